"""The worker: pulls tasks from a coordinator, runs them, returns safetensors.

A worker opens no port: it polls ``/v1/claim``, fetches the checkpoint and shard
items its lease names (each checked against its CID), trains while a background
thread heartbeats the lease, and posts the new state. Every request is signed
with the worker's key. Nothing received is unpickled or executed: tasks are
JSON, tensors safetensors. Several logical workers, each with its own key, may
share one process (:func:`run_workers`), so one machine can stand in for the
many distinct workers an exposure cap needs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from databright.compute._requests import RequestSigner
from databright.compute._task import Task, run_task
from databright.errors import ComputeError, DataBrightError

__all__ = ["Worker", "run_workers", "signed_call"]


def signed_call(client: httpx.Client, signer: RequestSigner, method: str, path: str, body: bytes = b"",
                extra: Mapping[str, str] | None = None) -> httpx.Response:
    """One signed request to a coordinator; a refusal or no answer raises :class:`ComputeError`."""
    headers = {**signer.headers(method, path, body), **(extra or {})}
    try:
        response = client.request(method, path, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ComputeError(f"coordinator unreachable: {exc}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ComputeError(f"coordinator refused {method} {path}: {detail}")
    return response


class Worker:
    """One logical worker: a key, a fee and a connection to a coordinator."""

    def __init__(self, client: httpx.Client, signer: RequestSigner, fingerprint: Mapping[str, Any],
                 min_fee: int) -> None:
        self.client = client
        self.signer = signer
        self.fingerprint = dict(fingerprint)
        self.min_fee = min_fee
        self.completed = 0

    def _call(self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None) -> httpx.Response:
        return signed_call(self.client, self.signer, method, path, body, extra)

    def register(self) -> dict[str, Any]:
        body = json.dumps({"fingerprint": self.fingerprint, "min_fee": str(self.min_fee)}).encode()
        result: dict[str, Any] = self._call("POST", "/v1/workers", body).json()
        return result

    def fetch(self, cid: str) -> bytes:
        return self._call("GET", f"/v1/blobs/{cid}").content

    def fetch_many(self, cids: list[str]) -> dict[str, bytes]:
        """Blobs in one request (each is still checked against its CID by the task runner)."""
        data = self._call("POST", "/v1/blobs", json.dumps({"cids": cids}).encode()).content
        out: dict[str, bytes] = {}
        at = 0
        for cid in cids:
            size = int.from_bytes(data[at:at + 8], "big")
            if at + 8 + size > len(data):
                raise ComputeError("coordinator sent a truncated blob batch")
            out[cid] = data[at + 8:at + 8 + size]
            at += 8 + size
        return out

    def step(self) -> bool:
        """Claim, run and submit one task; False when the coordinator has nothing for this worker."""
        response = self._call("POST", "/v1/claim")
        if response.status_code == 204:
            return False
        lease = response.json()
        task = Task.from_json(json.dumps(lease["task"]))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(int(lease["lease"]), float(lease["expires_at"]), stop),
                                daemon=True)
        beat.start()
        try:
            blobs = self.fetch_many(sorted(task.blobs))
            started = time.perf_counter()  # the worker's own compute, without transfers
            result = run_task(task, blobs.__getitem__)
            seconds = time.perf_counter() - started
        finally:
            stop.set()
            beat.join()
        self._call("POST", f"/v1/leases/{lease['lease']}/result", result.state,
                   {"Content-Type": "application/octet-stream", "X-DataBright-Compute-Seconds": f"{seconds:.6f}"})
        self.completed += 1
        return True

    def _heartbeat(self, lease: int, expires_at: float, stop: threading.Event) -> None:
        while not stop.wait(max(0.5, (expires_at - time.time()) / 3)):
            try:
                expires_at = float(self._call("POST", f"/v1/leases/{lease}/heartbeat").json()["expires_at"])
            except DataBrightError:
                return


def run_workers(workers: Sequence[Worker], *, idle_s: float = 1.0, stop: threading.Event | None = None,
                until_idle: bool = False) -> int:
    """Drive logical workers in turn until ``stop`` (or, with ``until_idle``, until none has work)."""
    stop = stop or threading.Event()
    for worker in workers:
        worker.register()
    done = 0
    while not stop.is_set():
        busy = False
        for worker in workers:
            try:
                if worker.step():
                    busy, done = True, done + 1
            except ComputeError as exc:
                if "slashed" in str(exc):
                    continue
                raise
        if not busy:
            if until_idle:
                return done
            stop.wait(idle_s)
    return done
