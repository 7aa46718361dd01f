"""Data valuation: how much a contribution is worth.

- ``knn_shapley``: exact KNN-Shapley values (Jia et al., PVLDB 2019), vectorised;
- ``loo_gain``: leave-one-out gain in validation accuracy of the dataset's best
  model fine-tuned with and without a batch;
- ``RewardPolicy``: the published mapping from gain to shares (diminishing returns);
- ``quality_signals``: what shareholders see before they vote;
- ``text_pair_results``: the duplicate signals (MinHash) that value parallel
  text until a translation spec exists.
"""

from __future__ import annotations

from databright.valuation._knn_shapley import KNNShapley, knn_shapley
from databright.valuation._loo import Gain, SeedScore, loo_gain
from databright.valuation._policy import RewardPolicy, value_ppm
from databright.valuation._signals import SignalCache, Signals, quality_signals
from databright.valuation._text_pairs import PairSignatures, pair_signals, text_pair_results

__all__ = [
    "Gain",
    "KNNShapley",
    "PairSignatures",
    "RewardPolicy",
    "SeedScore",
    "SignalCache",
    "Signals",
    "knn_shapley",
    "loo_gain",
    "pair_signals",
    "quality_signals",
    "text_pair_results",
    "value_ppm",
]
