"""Tasks: "from checkpoint C, train E local steps on shard S with seed z", as data.

A task crosses the boundary between coordinator and worker as canonical JSON:
the spec inline (a :class:`~databright.ml.ModelSpec` can only name the
allow-listed architectures ``mlp`` and ``cnn``), the starting checkpoint by CID
and SHA-256, and the shard as (item CID, label) pairs. Running it is a pure
function of the task and the bytes its CIDs name, so workers in one pinned
environment return bit-identical safetensors and their digests can be compared.
Every blob is checked against its CID before use and tensors are only ever read
with safetensors, so a hostile coordinator or store cannot make a worker
unpickle or execute anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from databright.errors import InputError
from databright.ml import ModelSpec, encode_items, encode_labels, load_checkpoint, save_checkpoint, train
from databright.storage import canonical_json, cid_of

__all__ = ["Task", "TaskResult", "fetch_verified", "run_task", "task_inputs"]

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class Task:
    """One unit of work of a job's round."""

    job: int
    round: int
    index: int
    checkpoint: str
    checkpoint_sha256: str
    shard: tuple[tuple[str, str], ...]
    steps: int
    seed: int
    spec: ModelSpec

    def to_json(self) -> bytes:
        return canonical_json({
            "job": self.job, "round": self.round, "index": self.index, "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256, "shard": [list(pair) for pair in self.shard],
            "steps": self.steps, "seed": self.seed, "spec": json.loads(self.spec.to_json()),
        })

    @classmethod
    def from_json(cls, data: bytes | str) -> Task:
        """Parse a task; anything malformed raises :class:`InputError`."""
        try:
            raw: Any = json.loads(data)
            shard = tuple((str(cid), str(label)) for cid, label in raw["shard"])
            task = cls(int(raw["job"]), int(raw["round"]), int(raw["index"]), str(raw["checkpoint"]),
                       str(raw["checkpoint_sha256"]), shard, int(raw["steps"]), int(raw["seed"]),
                       ModelSpec.from_json(json.dumps(raw["spec"])))
        except InputError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"malformed task: {exc}") from None
        if task.steps < 0 or task.seed < 0 or not task.shard:
            raise InputError("a task needs non-negative steps and seed and a non-empty shard")
        return task

    @property
    def blobs(self) -> frozenset[str]:
        """Every CID this task needs: what a lease entitles its worker to fetch."""
        return frozenset([self.checkpoint, *(cid for cid, _ in self.shard)])


@dataclass(frozen=True)
class TaskResult:
    state: bytes
    digest: str


def fetch_verified(fetch: Fetch, cid: str) -> bytes:
    """``fetch(cid)``, refused unless the bytes hash to ``cid``."""
    data = fetch(cid)
    if str(cid_of(data)) != cid:
        raise InputError(f"blob {cid} does not match its CID")
    return data


def task_inputs(task: Task, fetch: Fetch) -> tuple[dict[str, Tensor], NDArray[np.floating], NDArray[np.integer]]:
    """The task's starting state and its shard as arrays, every blob checked against its CID and digest."""
    blob = fetch_verified(fetch, task.checkpoint)
    if hashlib.sha256(blob).hexdigest() != task.checkpoint_sha256:
        raise InputError(f"checkpoint {task.checkpoint} does not match its digest")
    state = load_checkpoint(blob)
    items = [fetch_verified(fetch, cid) for cid, _ in task.shard]
    return state, encode_items(task.spec, items), encode_labels(task.spec, [label for _, label in task.shard])


def run_task(task: Task, fetch: Fetch) -> TaskResult:
    """Train ``task.steps`` steps from its checkpoint on its shard; the new state as safetensors."""
    state, x, y = task_inputs(task, fetch)
    out = save_checkpoint(train(task.spec, state, x, y, steps=task.steps, seed=task.seed))
    return TaskResult(out, hashlib.sha256(out).hexdigest())
