"""A serving worker: pulls prediction requests from a coordinator and answers them.

Like a training worker it opens no port and signs every request. It long-polls
``/v1/serving/claim``, fetches the model checkpoint a lease names once (checked
against the SHA-256 the chain registered, read only as safetensors), runs the
model on one thread and posts its answer as canonical JSON. A worker that was
slashed gets no more requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any

from databright.compute._serving_answers import Answer, infer
from databright.compute._worker import Worker
from databright.errors import ComputeError, InputError
from databright.ml import ModelSpec, load_checkpoint

__all__ = ["ServingWorker", "run_serving_workers"]


class ServingWorker(Worker):
    """One logical worker answering prediction requests (registered like a training worker)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered = 0
        self._models: dict[str, dict[str, Any]] = {}

    def _state(self, cid: str, sha256: str) -> dict[str, Any]:
        if cid not in self._models:
            blob = self._call("GET", f"/v1/serving/blobs/{cid}").content
            if hashlib.sha256(blob).hexdigest() != sha256:
                raise InputError(f"checkpoint {cid} does not match its registered digest")
            self._models[cid] = load_checkpoint(blob)
        return self._models[cid]

    def respond(self, lease: dict[str, Any]) -> Answer:
        """This worker's answer to a lease (an honest one: the model's)."""
        spec = ModelSpec.from_json(json.dumps(lease["spec"]))
        items = [base64.b64decode(item, validate=True) for item in lease["items"]]
        state = self._state(str(lease["checkpoint"]), str(lease["checkpoint_sha256"]))
        return infer(spec, state, items, int(lease["request"]), str(lease["input_sha256"]))

    def serve_once(self, wait_s: float = 5.0) -> bool:
        """Claim, answer and post one request; False when none came within ``wait_s``."""
        response = self._call("POST", "/v1/serving/claim", json.dumps({"wait": wait_s}).encode())
        if response.status_code == 204:
            return False
        lease = response.json()
        answer = self.respond(lease)
        self._call("POST", f"/v1/serving/answers/{lease['answer']}", answer.to_json(),
                   {"Content-Type": "application/json"})
        self.answered += 1
        return True


def run_serving_workers(workers: Sequence[ServingWorker], stop: threading.Event, wait_s: float = 2.0) -> None:
    """Each worker on its own thread, long-polling until ``stop``; a slashed worker stops.
    The first failure of any worker stops them all and is raised here."""
    for worker in workers:
        worker.register()
    failures: list[BaseException] = []

    def loop(worker: ServingWorker) -> None:
        while not stop.is_set():
            try:
                worker.serve_once(wait_s)
            except ComputeError as exc:
                if "slashed" in str(exc) or stop.is_set():
                    return
                failures.append(exc)
                stop.set()
            except Exception as exc:  # noqa: BLE001 - raised on the caller's thread below
                failures.append(exc)
                stop.set()

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
