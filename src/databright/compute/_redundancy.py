"""Triple modular redundancy: comparing results by digest and deciding a task.

With redundancy 3 a task goes to three workers of three disjoint groups with
equal environment fingerprints, so honest results are bit-identical. A result is
used only when all three agree. Otherwise the task is run again on fresh
workers and the digest held by a strict majority of all results wins; every
other result is the odd one out and is slashed, its signed submission the
evidence. Redundancy 1 accepts the single result (nothing to compare it with).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_RERUNS", "Verdict", "decide"]

#: Re-runs (of ``redundancy`` fresh workers each) before a task is given up as undecidable.
MAX_RERUNS = 3


@dataclass(frozen=True)
class Verdict:
    """``digest`` accepted (None: more results needed), and the indices of the results that differ."""

    digest: str | None
    odd: tuple[int, ...]
    more: int  # further results to ask for when undecided


def decide(digests: Sequence[str], redundancy: int, needed: int) -> Verdict:
    """Decide a task from the digests of its results so far (in submission order)."""
    if len(digests) < needed:
        return Verdict(None, (), 0)
    counts = Counter(digests)
    top, votes = counts.most_common(1)[0]
    if len(counts) == 1:
        return Verdict(top, (), 0)
    if needed == redundancy:
        # The first disagreement: nothing is used until fresh workers have re-run it.
        return Verdict(None, (), redundancy)
    if votes * 2 > len(digests):
        return Verdict(top, tuple(i for i, d in enumerate(digests) if d != top), 0)
    return Verdict(None, (), redundancy)
