"""Workers that fake some segments of an optimistic run, then carry on honestly from the fake."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from databright.compute._challenges import task_digest
from databright.compute._commitments import CommittedRun, MerkleTree, boundaries, sign_commitment
from databright.compute._requests import RequestDomain
from databright.compute._task import Fetch, Task, task_inputs
from databright.compute._worker import Worker
from databright.ml import ModelSpec, load_checkpoint, save_checkpoint
from databright.ml._resumable import Training

MODES = ("skip", "perturb", "replay")


def cheating_run(spec: ModelSpec, state: dict[str, Tensor] | None, x: NDArray[np.floating],
                 y: NDArray[np.integer], *, steps: int, seed: int, interval: int, task: bytes,
                 domain: RequestDomain, key: bytes, faked: set[int], mode: str) -> CommittedRun:
    """Like ``commit_training``, but segments in ``faked`` end in a state not computed honestly.

    ``skip`` does not train the segment (only its counters move), ``perturb``
    trains it and nudges one weight, ``replay`` commits an earlier state of its
    own run again (the one two boundaries back) and carries on from there.
    """
    points = boundaries(steps, interval)
    run = Training(spec, state, x, y, seed=seed)
    snapshots = [save_checkpoint(run.snapshot())]
    for segment, (a, b) in enumerate(zip(points, points[1:], strict=False)):
        if segment in faked and mode == "skip":
            snap = run.snapshot()
            snap["train.position"] = snap["train.position"] + torch.tensor([0, b - a])
            run = Training.resume(spec, snap, x, y)
        elif segment in faked and mode == "replay":
            run = Training.resume(spec, load_checkpoint(snapshots[max(0, len(snapshots) - 2)]), x, y)
        else:
            run.run(b - a)
            if segment in faked:
                snap = run.snapshot()
                name = next(k for k in sorted(snap) if k.startswith("model."))
                snap[name] = snap[name] + 1e-3
                run = Training.resume(spec, snap, x, y)
        snapshots.append(save_checkpoint(run.snapshot()))
    tree = MerkleTree([hashlib.sha256(s).digest() for s in snapshots])
    weights = run.weights()
    result = hashlib.sha256(save_checkpoint(weights)).digest()
    commitment = sign_commitment(domain, key, task, tree, interval, steps, result)
    return CommittedRun(weights, snapshots, tree, commitment)


def weights_of(run: CommittedRun) -> bytes:
    last = load_checkpoint(run.snapshots[-1])
    return save_checkpoint({k.removeprefix("model."): v for k, v in last.items() if k.startswith("model.")})


class FakingWorker(Worker):
    """A worker that, in optimistic tasks, fakes ``fraction`` of its segments (at least one) and signs the lot."""

    def __init__(self, *args: Any, fraction: float, mode: str = "perturb", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fraction, self.mode = fraction, mode

    def commit(self, task: Task, fetch: Fetch, interval: int) -> CommittedRun:
        state, x, y = task_inputs(task, fetch)
        segments = len(boundaries(task.steps, interval)) - 1
        count = min(segments, max(1, round(self.fraction * segments)))
        faked = {int(i) for i in np.random.default_rng(task.seed).choice(segments, size=count, replace=False)}
        return cheating_run(task.spec, state, x, y, steps=task.steps, seed=task.seed, interval=interval,
                            task=task_digest(task), domain=self.signer.domain, key=self.signer.key, faked=faked,
                            mode=self.mode)
