"""Leave-one-out accuracy gain of a proposal.

The value of a batch is how much it improves the dataset's best model: the
checkpoint is fine-tuned on the accepted items with the batch and, separately,
without it — same seeds, same number of steps, one thread — and the gain is the
difference in validation accuracy, averaged over seeds. The two runs of a seed
are paired: the accepted items' minibatches follow the same sequence in both,
and the batch's items join them in proportion (``ml.train``'s ``extra``), so
the difference is the batch's doing rather than minibatch luck. Because the model is
already trained on everything accepted so far, the same batch adds less the
larger the dataset has grown: the measure has diminishing returns built in.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from databright.ml import ModelSpec, RowBlock, Stack, accuracy, train

__all__ = ["Gain", "SeedScore", "loo_gain"]

Arrays = tuple[NDArray[np.float32], NDArray[np.int64]]
#: The accepted items may be rows on disk, read a minibatch at a time.
Accepted = tuple[NDArray[np.float32] | RowBlock | Stack, NDArray[np.int64]]


@dataclass(frozen=True)
class SeedScore:
    seed: int
    with_batch: float
    without_batch: float

    @property
    def gain(self) -> float:
        return self.with_batch - self.without_batch


@dataclass(frozen=True)
class Gain:
    """Validation-accuracy gain of a batch, per seed and summarised."""

    scores: tuple[SeedScore, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(s.gain for s in self.scores)

    @property
    def std(self) -> float:
        return statistics.pstdev(s.gain for s in self.scores) if len(self.scores) > 1 else 0.0


def _fit_score(
    spec: ModelSpec,
    checkpoint: dict[str, Tensor] | None,
    accepted: Accepted,
    batch: Arrays | None,
    validation: Arrays,
    seed: int,
) -> float:
    steps = spec.pretrain_steps if checkpoint is None else spec.finetune_steps
    state = train(spec, checkpoint, accepted[0], accepted[1], steps=steps, seed=seed, extra=batch)
    return accuracy(spec, state, validation[0], validation[1])


def loo_gain(
    spec: ModelSpec,
    checkpoint: dict[str, Tensor] | None,
    accepted: Accepted,
    batch: Arrays,
    validation: Arrays,
    seeds: Sequence[int],
    *,
    baseline: Callable[[int], float | None] = lambda seed: None,
) -> tuple[Gain, dict[int, float]]:
    """Gain in validation accuracy from adding ``batch`` to ``accepted``.

    ``baseline(seed)`` may return a cached without-batch score for a seed (the
    same for every proposal against the same accepted set and checkpoint);
    the scores computed here are returned so the caller can cache them.
    """
    scores, computed = [], {}
    for seed in seeds:
        without = baseline(seed)
        if without is None:
            without = computed[seed] = _fit_score(spec, checkpoint, accepted, None, validation, seed)
        scores.append(SeedScore(seed, _fit_score(spec, checkpoint, accepted, batch, validation, seed), without))
    return Gain(tuple(scores)), computed
