"""A worker's side of a split job: one stage of a pipeline, from its lease to its piece's new state.

A stage lease names one piece of the model (its :class:`StageSpec` and the CID
of that piece's starting state) and, for stage 0 only, the task's shard. The
worker fetches exactly those blobs, then meets its neighbours:

1. a stage after the first listens on a port of its own host and reports the
   address to the coordinator in a signed request (``/v1/stages/{lease}/listen``);
2. every stage polls ``/v1/stages/{lease}/peers`` until all stages of the
   pipeline have claimed and listen; the coordinator then gives each stage its
   downstream neighbour's address and a :class:`StageToken` bound to the job,
   the pipeline and both workers' keys;
3. each stage but the last connects downstream and answers the receiver's
   challenge (:func:`connect_stage`); each stage but the first accepts its
   upstream neighbour and checks its token (:func:`accept_stage`).

Then :func:`run_stage` trains the piece and the worker posts the piece's state
(safetensors) as the lease's result. Waiting is bounded: sockets time out, and
the coordinator lapses a pipeline that does not form within a lease. A peer
that sends a malformed, oversized or foreign frame ends the channel
(:class:`ChannelError`); the stage reports why (``/v1/stages/{lease}/abort``)
and the coordinator ends that pipeline.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from databright.compute._pipeline import StageTimes, run_stage, stage_batches
from databright.compute._splitting import Stage, StageSpec
from databright.compute._stage_channel import ChannelError, StageToken, accept_stage, connect_stage
from databright.compute._task import fetch_verified
from databright.errors import DataBrightError, InputError
from databright.ml import ModelSpec, encode_items, encode_labels, load_checkpoint, save_checkpoint, single_thread
from databright.storage import canonical_json

if TYPE_CHECKING:
    from databright.compute._worker import Worker

__all__ = ["StageRun", "StageTask"]

#: Seconds a stage waits on a neighbour (connecting, a frame) before giving up on the pipeline.
CHANNEL_TIMEOUT_S = 60.0
_POLL_S = 0.1


@dataclass(frozen=True)
class StageTask:
    """One stage of one pipeline of a split job's task."""

    job: int
    round: int
    index: int  # the shard task this pipeline trains
    pipeline: int
    stage: StageSpec
    checkpoint: str  # this piece's starting state, never the whole model's
    checkpoint_sha256: str
    shard: tuple[tuple[str, str], ...]  # stage 0 only: the others never see the items
    steps: int
    seed: int
    batch: int  # items per step, which every stage must agree on to check frame shapes
    spec: ModelSpec

    def to_json(self) -> bytes:
        return canonical_json({
            "kind": "stage", "job": self.job, "round": self.round, "index": self.index, "pipeline": self.pipeline,
            "stage": json.loads(self.stage.to_json()), "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256, "shard": [list(pair) for pair in self.shard],
            "steps": self.steps, "seed": self.seed, "batch": self.batch, "spec": json.loads(self.spec.to_json()),
        })

    @classmethod
    def from_json(cls, data: bytes | str) -> StageTask:
        """Parse a stage task; anything malformed raises :class:`InputError`."""
        try:
            raw: Any = json.loads(data)
            task = cls(int(raw["job"]), int(raw["round"]), int(raw["index"]), int(raw["pipeline"]),
                       StageSpec.from_json(json.dumps(raw["stage"])), str(raw["checkpoint"]),
                       str(raw["checkpoint_sha256"]), tuple((str(c), str(lbl)) for c, lbl in raw["shard"]),
                       int(raw["steps"]), int(raw["seed"]), int(raw["batch"]),
                       ModelSpec.from_json(json.dumps(raw["spec"])))
        except InputError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"malformed stage task: {exc}") from None
        if task.steps < 0 or task.seed < 0 or task.batch < 1 or (task.stage.index == 0) != bool(task.shard):
            raise InputError("a stage task needs non-negative steps and seed, a positive batch, and a shard "
                             "exactly when it is the first stage")
        return task

    @property
    def blobs(self) -> frozenset[str]:
        """What this stage's lease entitles it to fetch: its piece, and the shard for stage 0."""
        return frozenset([self.checkpoint, *(cid for cid, _ in self.shard)])


class _SharedHold:
    """:func:`single_thread` held once for all the stages that run in this process at a time.

    Each stage holding it would deadlock a pipeline whose stages are logical
    workers of one process (stage 0 would wait for stage 1's gradient while
    holding the lock stage 1 waits for), so a helper thread holds it while any
    stage runs, as the pipeline's own test does for its stage threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._release = threading.Event()
        self._holder: threading.Thread | None = None

    def _hold(self, ready: threading.Event, release: threading.Event) -> None:
        with single_thread():
            ready.set()
            release.wait()

    def __enter__(self) -> None:
        with self._lock:
            if self._count == 0:
                ready, self._release = threading.Event(), threading.Event()
                self._holder = threading.Thread(target=self._hold, args=(ready, self._release), daemon=True)
                self._holder.start()
                ready.wait()
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0 and self._holder is not None:
                self._release.set()
                self._holder.join()
                self._holder = None


_HOLD = _SharedHold()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ChannelError(f"the coordinator gave a malformed stage address {text!r}")
    return host.strip("[]"), int(port)


class StageRun:
    """Run one stage lease: rendezvous, handshake, train, and the piece's state as safetensors."""

    def __init__(self, worker: Worker, lease: int, task: StageTask, host: str = "127.0.0.1",
                 timeout_s: float = CHANNEL_TIMEOUT_S) -> None:
        self.worker = worker
        self.lease = lease
        self.task = task
        self.host = host
        self.timeout_s = timeout_s
        self.times: StageTimes | None = None

    def run(self) -> bytes:
        task = self.task
        listener: socket.socket | None = None
        up: socket.socket | None = None
        down: socket.socket | None = None
        try:
            if task.stage.index > 0:
                listener = socket.create_server((self.host, 0))
                listener.settimeout(self.timeout_s)
                host, port = listener.getsockname()[:2]
                self.worker.call("POST", f"/v1/stages/{self.lease}/listen",
                                 json.dumps({"host": host, "port": port}).encode())
            peers = self._peers()
            stage, batches = self._load()
            if not task.stage.last:
                down = self._connect(peers)
            if listener is not None:
                up = self._accept(listener, peers)
            with _HOLD:
                self.times = self._train(stage, up, down, batches)
            return save_checkpoint(stage.state())
        except (ChannelError, OSError) as exc:
            reason = str(exc) if isinstance(exc, ChannelError) else f"stage channel: {exc}"
            self._abort(reason)
            raise ChannelError(f"stage {task.stage.index} of job {task.job} task {task.index}: {reason}") from None
        finally:
            for sock in (up, down, listener):
                if sock is not None:
                    sock.close()

    def _train(self, stage: Stage, up: socket.socket | None, down: socket.socket | None,
               batches: Any) -> StageTimes:
        return run_stage(stage, steps=self.task.steps, batch=self.task.batch, upstream=up, downstream=down,
                         batches=batches)

    def _peers(self) -> dict[str, Any]:
        """Wait, bounded by the coordinator's formation deadline, until every stage has claimed."""
        while True:
            response = self.worker.call("POST", f"/v1/stages/{self.lease}/peers")
            if response.status_code != 204:
                peers: dict[str, Any] = response.json()
                return peers
            time.sleep(_POLL_S)

    def _load(self) -> tuple[Stage, Any]:
        task = self.task
        blobs = self.worker.fetch_many(sorted(task.blobs))
        piece = fetch_verified(blobs.__getitem__, task.checkpoint)
        if hashlib.sha256(piece).hexdigest() != task.checkpoint_sha256:
            raise InputError(f"piece {task.checkpoint} does not match its digest")
        stage = Stage(task.stage, load_checkpoint(piece))
        if task.stage.index > 0:
            return stage, None
        x = encode_items(task.spec, [fetch_verified(blobs.__getitem__, cid) for cid, _ in task.shard])
        y = encode_labels(task.spec, [label for _, label in task.shard])
        return stage, stage_batches(task.spec, x, y, steps=task.steps, seed=task.seed)

    def _connect(self, peers: dict[str, Any]) -> socket.socket:
        downstream = peers["downstream"]
        token = StageToken.from_bytes(bytes.fromhex(str(downstream["token"])))
        sock = socket.create_connection(_address(str(downstream["address"])), timeout=self.timeout_s)
        sock.settimeout(self.timeout_s)
        connect_stage(sock, self.worker.signer.domain, token, self.worker.signer.stage_key())
        return sock

    def _accept(self, listener: socket.socket, peers: dict[str, Any]) -> socket.socket:
        sock, _ = listener.accept()
        sock.settimeout(self.timeout_s)
        try:
            token = accept_stage(sock, self.worker.signer.domain, coordinator=str(peers["coordinator"]),
                                 job=self.task.job, task=self.task.pipeline, stage=self.task.stage.index - 1,
                                 receiver=self.worker.signer.address, spent=set())
            if token.sender != peers["upstream"]:
                raise ChannelError("the stage peer is not the upstream worker the coordinator named")
        except BaseException:
            sock.close()
            raise
        return sock

    def _abort(self, reason: str) -> None:
        try:
            self.worker.call("POST", f"/v1/stages/{self.lease}/abort", json.dumps({"reason": reason}).encode())
        except DataBrightError:
            pass  # the lease may be gone already: the coordinator lapses the pipeline on its own

