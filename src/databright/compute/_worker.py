"""The worker: pulls tasks from a coordinator, runs them, returns safetensors.

A worker opens no port: it polls ``/v1/claim``, fetches the checkpoint and shard
items its lease names (each checked against its CID), trains while a background
thread heartbeats the lease, and posts the new state. Every request is signed
with the worker's key. Nothing received is unpickled or executed: tasks are
JSON, tensors safetensors. Several logical workers, each with its own key, may
share one process (:func:`run_workers`), so one machine can stand in for the
many distinct workers an exposure cap needs. A stage of a split job runs on a
thread of its own (:mod:`._stage_worker`), since its neighbours in the pipeline
may be logical workers of this very process.

In an optimistically verified task (the claim names ``commit_every``) the
worker trains with a snapshot every k steps, posts its signed commitment and
then the result, and keeps the snapshots until the coordinator's verdict,
serving those it is challenged for each time it polls
(:meth:`Worker.answer_challenges`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from databright.compute._challenges import commitment_to_json, pack_answer, task_digest
from databright.compute._commitments import CommittedRun, commit_training
from databright.compute._requests import RequestSigner
from databright.compute._stage_worker import StageRun, StageTask
from databright.compute._task import Fetch, Task, run_task, task_inputs
from databright.ml import save_checkpoint
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

    #: What runs a stage lease; a test's hostile stage replaces it.
    stage_run: type[StageRun] = StageRun

    def __init__(self, client: httpx.Client, signer: RequestSigner, fingerprint: Mapping[str, Any],
                 min_fee: int) -> None:
        self.client = client
        self.signer = signer
        self.fingerprint = dict(fingerprint)
        self.min_fee = min_fee
        self.completed = 0
        #: Optimistic leases awaiting their verdict, with the snapshots they may be challenged for.
        self.pending: dict[int, CommittedRun] = {}
        #: The host a stage of a split job listens on for its upstream neighbour.
        self.stage_host = "127.0.0.1"
        self.stage_errors: list[str] = []
        self._staging: threading.Thread | None = None

    def _call(self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None) -> httpx.Response:
        return signed_call(self.client, self.signer, method, path, body, extra)

    def call(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        """A signed request to the coordinator; a refusal raises :class:`ComputeError`."""
        return self._call(method, path, body)

    @property
    def staging(self) -> bool:
        """Whether a stage of a split job is running on this worker's behalf."""
        return self._staging is not None and self._staging.is_alive()

    def register(self) -> dict[str, Any]:
        body = json.dumps({"fingerprint": self.fingerprint, "min_fee": str(self.min_fee)}).encode()
        result: dict[str, Any] = self._call("POST", "/v1/workers", body).json()
        return result

    def fetch(self, cid: str) -> bytes:
        return self._call("GET", f"/v1/blobs/{cid}").content

    def fetch_many(self, cids: list[str]) -> dict[str, bytes]:
        """Blobs in one request (each is still checked against its CID by the task runner)."""
        data = self._call("POST", "/v1/blobs", json.dumps({"cids": cids}).encode()).content
        return dict(zip(cids, _unframe(data, len(cids))))

    def claim(self) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        """A lease and the blobs its task names, in one request; None when there is nothing to do."""
        response = self._call("POST", "/v1/claim", b'{"with_blobs": true}')
        if response.status_code == 204:
            return None
        data = response.content
        head = _unframe(data, 1)[0]
        lease: dict[str, Any] = json.loads(head)
        if lease["task"].get("kind") == "stage":
            return lease, {}
        cids = sorted(Task.from_json(json.dumps(lease["task"])).blobs)
        return lease, dict(zip(cids, _unframe(data[8 + len(head):], len(cids))))

    def step(self) -> bool:
        """Answer open challenges, then claim, run and submit one task; False when there was nothing to do."""
        answered = self.answer_challenges()
        if self.staging:  # one lease at a time: a running stage holds this worker
            return answered
        claimed = self.claim()
        if claimed is None:
            return answered
        lease, blobs = claimed
        if lease["task"].get("kind") == "stage":
            self._staging = threading.Thread(target=self._stage, args=(lease,), daemon=True)
            self._staging.start()
            return True
        task = Task.from_json(json.dumps(lease["task"]))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(int(lease["lease"]), float(lease["expires_at"]), stop),
                                daemon=True)
        beat.start()
        try:
            started = time.perf_counter()  # the worker's own compute, without transfers
            interval = int(lease.get("commit_every", 0))
            committed = self.commit(task, blobs.__getitem__, interval) if interval else None
            state = save_checkpoint(committed.weights) if committed else run_task(task, blobs.__getitem__).state
            seconds = time.perf_counter() - started
            if committed is not None:
                self._call("POST", f"/v1/leases/{lease['lease']}/commitment",
                           commitment_to_json(committed.commitment), {"Content-Type": "application/json"})
        finally:
            stop.set()
            beat.join()
        self._call("POST", f"/v1/leases/{lease['lease']}/result", state,
                   {"Content-Type": "application/octet-stream", "X-DataBright-Compute-Seconds": f"{seconds:.6f}"})
        if committed is not None:
            self.pending[int(lease["lease"])] = committed
        self.completed += 1
        return True

    def commit(self, task: Task, fetch: Fetch, interval: int) -> CommittedRun:
        """Train ``task`` with a snapshot every ``interval`` steps and sign the Merkle root of the snapshots."""
        state, x, y = task_inputs(task, fetch)
        return commit_training(task.spec, state, x, y, steps=task.steps, seed=task.seed, interval=interval,
                               task=task_digest(task), domain=self.signer.domain, key=self.signer.key)

    def answer_challenges(self) -> bool:
        """Serve every snapshot the coordinator asks for; forget runs it has decided on. True if any was served."""
        served = False
        for lease, run in list(self.pending.items()):
            state = self._call("GET", f"/v1/leases/{lease}/challenges").json()
            if state["status"] in ("accepted", "rejected"):
                del self.pending[lease]
                continue
            for challenge in state["challenges"]:
                leaf = int(challenge["leaf"])
                self._call("POST", f"/v1/leases/{lease}/challenges/{leaf}", pack_answer(*run.serve(leaf)),
                           {"Content-Type": "application/octet-stream"})
                served = True
        return served

    def _stage(self, lease: dict[str, Any]) -> None:
        """Run one stage lease to its result; a failure is kept, the coordinator already knows of it."""
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(int(lease["lease"]), float(lease["expires_at"]), stop),
                                daemon=True)
        beat.start()
        try:
            task = StageTask.from_json(json.dumps(lease["task"]))
            started = time.perf_counter()
            state = self.stage_run(self, int(lease["lease"]), task, self.stage_host).run()
            seconds = time.perf_counter() - started
        except DataBrightError as exc:
            self.stage_errors.append(str(exc))
            return
        finally:
            stop.set()
            beat.join()
        try:
            self._call("POST", f"/v1/leases/{lease['lease']}/result", state,
                       {"Content-Type": "application/octet-stream", "X-DataBright-Compute-Seconds": f"{seconds:.6f}"})
        except DataBrightError as exc:
            self.stage_errors.append(str(exc))
            return
        self.completed += 1

    def _heartbeat(self, lease: int, expires_at: float, stop: threading.Event) -> None:
        while not stop.wait(max(0.5, (expires_at - time.time()) / 3)):
            try:
                expires_at = float(self._call("POST", f"/v1/leases/{lease}/heartbeat").json()["expires_at"])
            except DataBrightError:
                return


def _unframe(data: bytes, count: int) -> list[bytes]:
    """The first ``count`` length-prefixed parts of a framed response (:func:`._app._frames`)."""
    out, at = [], 0
    for _ in range(count):
        size = int.from_bytes(data[at:at + 8], "big")
        if at + 8 + size > len(data):
            raise ComputeError("coordinator sent a truncated blob batch")
        out.append(data[at + 8:at + 8 + size])
        at += 8 + size
    return out


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
            if until_idle and not any(w.pending or w.staging for w in workers):
                return done
            stop.wait(idle_s)
    return done
