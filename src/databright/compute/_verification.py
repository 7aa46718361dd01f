"""Optimistic verification: re-execute a random sample of a worker's committed segments.

A worker in optimistic mode trains a task alone and signs the Merkle root of its
snapshots every k steps (:mod:`databright.compute._commitments`). The
coordinator then draws ``s`` of the ``n`` segments with a seed the worker could
not know when it signed (the hash of its signature and a coordinator secret),
fetches each segment's starting snapshot with its Merkle proof, re-executes the
segment and compares the snapshot it reaches with the committed one, bitwise.
A worker that faked ``m`` of its ``n`` segments escapes only if none of them is
drawn: probability ``C(n - m, s) / C(n, s)`` (docs/compute.md, Verification).

On a mismatch the coordinator bisects between the committed start (leaf 0,
which it recomputes itself) and the bad leaf to the first segment whose
committed end differs from an honest replay of its committed start, and keeps
the two snapshots, their proofs and the signed commitment as evidence that
anyone can check with :func:`check_evidence`. A worker that does not serve a
snapshot, or serves one that fails its proof or does not parse, is treated as
a cheat: the verdict is the same as for a mismatch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from databright.compute._commitments import Commitment, Proof, boundaries, verify_proof
from databright.compute._jobs import Slash
from databright.compute._requests import RequestDomain
from databright.errors import DataBrightError, InputError
from databright.ml import ModelSpec, load_checkpoint, save_checkpoint
from databright.ml._resumable import Training
from databright.storage import BlobStore, canonical_json

__all__ = [
    "Outcome",
    "SnapshotNeeded",
    "check_evidence",
    "detection_probability",
    "min_stake",
    "samples_for",
    "sample_segments",
    "slash_for",
    "verify_run",
]

#: What a worker serves on request: snapshot ``index`` as safetensors, and its Merkle proof.
Serve = Callable[[int], tuple[bytes, Proof]]


def detection_probability(segments: int, faked: int, samples: int) -> float:
    """Chance that ``samples`` segments drawn without replacement hit at least one of ``faked``."""
    if faked <= 0:
        return 0.0
    samples = min(samples, segments)
    return 1.0 - math.comb(segments - faked, samples) / math.comb(segments, samples)


def samples_for(segments: int, fraction: float, confidence: float) -> int:
    """The fewest samples that catch a worker faking ``fraction`` of ``segments`` with ``confidence``."""
    faked = max(1, math.ceil(fraction * segments))
    for samples in range(1, segments + 1):
        if detection_probability(segments, faked, samples) >= confidence:
            return samples
    return segments


def min_stake(task_cost: float, segments: int, samples: int) -> float:
    """The smallest stake at which faking any number of segments has negative expected value.

    Faking one segment saves ``task_cost / n`` and is caught with ``p = s / n``;
    ``(1 - p) * saved - p * stake < 0`` gives ``stake > (n - s) / s * task_cost / n``.
    Faking more segments saves proportionally more but is caught more often
    still (``p`` grows faster than linearly relative to ``1 - p``), so one segment is the
    cheat's best case.
    """
    samples = min(samples, segments)
    return (segments - samples) / samples * task_cost / segments


def sample_segments(commitment: Commitment, secret: bytes, samples: int) -> list[int]:
    """Which segments to re-execute: seeded by the signature (fixed before) and a secret (unknown to the worker)."""
    segments = commitment.leaves - 1
    seed = int.from_bytes(hashlib.sha256(commitment.signature + secret).digest()[:8], "big")
    picked = np.random.default_rng(seed).choice(segments, size=min(samples, segments), replace=False)
    return sorted(int(i) for i in picked)


@dataclass
class Outcome:
    """The verdict on one committed run, and what checking it cost."""

    accepted: bool
    reason: str
    checked: list[int]
    replayed_steps: int
    bad_segment: int | None = None
    evidence: dict[str, Any] | None = None
    blobs: list[bytes] = field(default_factory=list)


class _Refused(DataBrightError):
    pass


class SnapshotNeeded(DataBrightError):
    """Raised by a ``serve`` that does not hold snapshot ``index`` yet: verification pauses, it does not fail.

    A coordinator whose workers pull cannot fetch a snapshot in the middle of
    :func:`verify_run`; it asks the worker for it and runs the check again once
    it has arrived. The run is a pure function of the snapshots it is given, so
    every attempt asks for the same ones in the same order.
    """

    def __init__(self, index: int) -> None:
        super().__init__(f"snapshot {index} has not been served yet")
        self.index = index


@dataclass
class _Check:
    spec: ModelSpec
    x: NDArray[np.floating]
    y: NDArray[np.integer]
    commitment: Commitment
    serve: Serve
    points: list[int]
    replayed: int = 0
    fetched: dict[int, bytes] = field(default_factory=dict)

    def leaf(self, index: int) -> bytes:
        if index not in self.fetched:
            try:
                blob, proof = self.serve(index)
            except SnapshotNeeded:
                raise
            except Exception as exc:  # whatever goes wrong on the worker's side, it did not serve
                raise _Refused(f"worker did not serve snapshot {index}: {exc}") from None
            digest = hashlib.sha256(blob).digest()
            if not verify_proof(self.commitment.root, index, self.commitment.leaves, digest, proof):
                raise _Refused(f"snapshot {index} does not match its Merkle proof")
            self.fetched[index] = bytes(blob)
        return self.fetched[index]

    def resume(self, blob: bytes) -> Training:
        try:
            return Training.resume(self.spec, load_checkpoint(blob), self.x, self.y)
        except InputError as exc:
            raise _Refused(f"worker served an unusable snapshot: {exc}") from None

    def replay(self, run: Training, start: int, end: int) -> bytes:
        steps = self.points[end] - self.points[start]
        run.run(steps)
        self.replayed += steps
        return save_checkpoint(run.snapshot())


def verify_run(spec: ModelSpec, state: dict[str, Tensor] | None, x: NDArray[np.floating],
               y: NDArray[np.integer], *, seed: int, commitment: Commitment, result: bytes,
               serve: Serve, segments: list[int], domain: RequestDomain, worker: str) -> Outcome:
    """Check ``segments`` of a committed run of (spec, state, x, y, seed); bisect on a mismatch."""
    points = boundaries(commitment.steps, commitment.interval)
    if (commitment.signer(domain) != worker or len(points) != commitment.leaves
            or hashlib.sha256(result).digest() != commitment.result):
        return Outcome(False, "commitment is not signed by the worker or does not fit its task", [], 0)
    check = _Check(spec, x, y, commitment, serve, points)
    start = Training(spec, state, x, y, seed=seed)
    honest_start = save_checkpoint(start.snapshot())
    try:
        last = load_checkpoint(check.leaf(len(points) - 1))
        weights = {k.removeprefix("model."): v for k, v in last.items() if k.startswith("model.")}
        if save_checkpoint(weights) != result:
            return Outcome(False, "result is not the committed final state", [], 0)
        if check.leaf(0) != honest_start:
            return _reject(check, 0, honest_start, "committed start is not the task's start", [])
        for index in segments:
            replayed = check.replay(check.resume(check.leaf(index)), index, index + 1)
            if replayed != check.leaf(index + 1):
                first, honest = _bisect(check, honest_start, index + 1)
                return _reject(check, first, honest, f"segment {first} does not replay bitwise", segments)
    except _Refused as exc:
        return Outcome(False, f"treated as cheating: {exc}", segments, check.replayed)
    return Outcome(True, "every sampled segment replays bitwise", segments, check.replayed)


def _bisect(check: _Check, honest_start: bytes, bad: int) -> tuple[int, bytes]:
    """The first segment whose committed end leaves the honest trajectory, and that honest end.

    Invariant: leaf ``lo`` is on the honest trajectory (its honest snapshot held
    in ``honest``), leaf ``hi`` is not.
    """
    lo, hi, honest = 0, bad, honest_start
    while hi - lo > 1:
        mid = (lo + hi) // 2
        reached = check.replay(check.resume(honest), lo, mid)
        if reached == check.leaf(mid):
            lo, honest = mid, reached
        else:
            hi = mid
    return lo, check.replay(check.resume(honest), lo, lo + 1)


def _reject(check: _Check, first: int, honest: bytes, reason: str, segments: list[int]) -> Outcome:
    """Evidence for segment ``first``: its committed start and end with proofs, and the honest end's digest."""
    if reason.startswith("committed start"):
        claimed = [check.leaf(0)]
        evidence: dict[str, Any] = {"kind": "start", "leaf": 0}
    else:
        claimed = [check.leaf(first), check.leaf(first + 1)]
        evidence = {"kind": "segment", "leaf": first, "steps": check.points[first + 1] - check.points[first]}
    evidence["commitment"] = check.commitment.evidence()
    evidence["snapshots"] = ["0x" + hashlib.sha256(b).hexdigest() for b in claimed]
    evidence["honest"] = "0x" + hashlib.sha256(honest).hexdigest()
    return Outcome(False, reason, segments, check.replayed, first, evidence, claimed)


def check_evidence(spec: ModelSpec, x: NDArray[np.floating], y: NDArray[np.integer], evidence: dict[str, Any],
                   blobs: list[bytes], proofs: list[Proof], commitment: Commitment, domain: RequestDomain,
                   worker: str) -> bool:
    """Whether ``evidence`` of a bad segment holds: signed root, proven snapshots, and a replay that differs."""
    if commitment.signer(domain) != worker or evidence.get("kind") != "segment" or len(blobs) != 2:
        return False
    first = int(evidence["leaf"])
    for offset, (blob, proof) in enumerate(zip(blobs, proofs, strict=True)):
        if not verify_proof(commitment.root, first + offset, commitment.leaves, hashlib.sha256(blob).digest(), proof):
            return False
    try:
        run = Training.resume(spec, load_checkpoint(blobs[0]), x, y)
    except InputError:
        return False
    points = boundaries(commitment.steps, commitment.interval)
    if not 0 <= first < len(points) - 1:
        return False
    run.run(points[first + 1] - points[first])
    return save_checkpoint(run.snapshot()) != blobs[1]


def slash_for(outcome: Outcome, worker: str, amount: int, store: BlobStore) -> Slash | None:
    """The slash a rejected run earns: its snapshots and evidence stored as blobs, the evidence's CID cited."""
    if outcome.accepted:
        return None
    evidence = dict(outcome.evidence or {"kind": "refused"})
    evidence["reason"] = outcome.reason
    evidence["snapshot_cids"] = [str(store.put(blob)) for blob in outcome.blobs]
    return Slash(worker, amount, str(store.put(canonical_json(evidence))), outcome.reason)
