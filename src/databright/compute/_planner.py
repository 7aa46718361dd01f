"""Planning a job: shards under the exposure cap, and why a job is waiting.

No untrusted worker may ever see more than ``max_exposure`` (default 5%) of a
dataset's items, counted over its whole lifetime. The planner therefore cuts
the dataset into shards of at most ``cap`` items, where ``cap`` is the cap in
items, and each round of federated averaging trains one task per shard. The
cut depends only on the dataset, its items and the cap (items are ordered by
a hash of dataset and CID, then chunked), so later jobs on the same dataset
reuse the same shards: a worker that trained shard S before can train it
again at no new exposure, while a fresh worker is only given a shard that
still fits under its cap. Which worker trains a shard is decided anew each
round (the lease goes to whoever claims first and fits), so shards move to
other workers between rounds when workers leave, are slashed or run out of
cap, and every round still covers all the data.

A full pass needs, per redundancy group, at least as many distinct workers as
there are shards: 20 at 5%. With fewer, the round cannot finish and
:func:`waiting_reason` says what is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from databright.errors import InputError

__all__ = ["exposure_cap", "partition", "task_seed", "waiting_reason"]


def exposure_cap(items: int, max_exposure_bps: int) -> int:
    """Items one worker may see: ``floor(items * bps / 10000)``; at least one item is required."""
    if not 0 < max_exposure_bps <= 10_000:
        raise InputError(f"max exposure must be between 1 and 10000 basis points, got {max_exposure_bps}")
    cap = items * max_exposure_bps // 10_000
    if cap < 1:
        raise InputError(f"a {max_exposure_bps / 100:g}% cap of {items} items is less than one item; "
                         "the dataset is too small for this cap")
    return cap


def partition(dataset_id: int, cids: Sequence[str], cap: int) -> list[int]:
    """The shard number of each item (in input order): shards of at most ``cap`` items, sizes within one."""
    n = len(cids)
    if n == 0:
        raise InputError("a job needs at least one item")
    shards = -(-n // cap)
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{dataset_id}:{cids[i]}".encode()).digest())
    out = [0] * n
    for rank, i in enumerate(order):
        out[i] = rank % shards  # round-robin keeps shard sizes within one of each other
    return out


def task_seed(job: int, round_: int, index: int, job_seed: int) -> int:
    """The seed of one task: distinct per (job, round, shard), 63 bits."""
    digest = hashlib.sha256(f"{job_seed}:{job}:{round_}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def waiting_reason(shards: int, redundancy: int, eligible_per_group: Sequence[int]) -> str | None:
    """Why a round cannot be covered with these workers, or None when it can."""
    short = [g for g, count in enumerate(eligible_per_group[:redundancy]) if count < shards]
    if len(eligible_per_group) < redundancy:
        short += list(range(len(eligible_per_group), redundancy))
    if not short:
        return None
    have = ", ".join(f"group {g}: {eligible_per_group[g] if g < len(eligible_per_group) else 0}"
                     for g in sorted(set(short)))
    return (f"waiting for workers: {shards} shards need {shards} distinct workers in each of "
            f"{redundancy} redundancy group(s) ({have})")
