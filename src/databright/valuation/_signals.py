"""Quality signals shown to shareholders before they vote.

For a proposed batch against the accepted data:

- KNN-Shapley values of the batch's items (Jia et al., 2019), computed with the
  accepted items and the batch as training set and the validation split as test
  set: their sum, mean and the number of negative items;
- exact duplicates: items whose CID is already accepted;
- near duplicates: items whose nearest accepted neighbour (Euclidean, in the
  model's input encoding) is closer than ``near_factor`` times the median
  nearest-neighbour distance among accepted items;
- suspected mislabels: items with a negative KNN-Shapley value whose label
  disagrees with the majority label of their ``k`` nearest accepted neighbours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.valuation._knn_shapley import knn_shapley

__all__ = ["Signals", "quality_signals"]


@dataclass(frozen=True)
class Signals:
    knn_values: tuple[float, ...]
    knn_sum: float
    knn_mean: float
    knn_negative: int
    exact_duplicates: tuple[int, ...]
    near_duplicates: tuple[tuple[int, int, float], ...]
    suspected_mislabels: tuple[int, ...]
    k: int
    near_threshold: float = field(default=0.0)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["near_duplicates"] = [list(t) for t in self.near_duplicates]
        for key in ("knn_values", "exact_duplicates", "suspected_mislabels"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signals:
        data = dict(data)
        data["knn_values"] = tuple(float(v) for v in data["knn_values"])
        data["exact_duplicates"] = tuple(int(v) for v in data["exact_duplicates"])
        data["suspected_mislabels"] = tuple(int(v) for v in data["suspected_mislabels"])
        data["near_duplicates"] = tuple((int(a), int(b), float(c)) for a, b, c in data["near_duplicates"])
        return cls(**data)


def _nearest(a: NDArray[np.float64], b: NDArray[np.float64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Indices and Euclidean distances of the ``k`` nearest rows of ``b`` for each row of ``a``.

    scikit-learn's brute-force search works through the distance matrix in
    chunks, so memory stays bounded however many items a dataset has.
    """
    from sklearn.neighbors import NearestNeighbors

    k = min(k, b.shape[0])
    search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(b)
    dist, order = search.kneighbors(a)
    return order.astype(np.int64), dist.astype(np.float64)


def quality_signals(
    accepted_x: NDArray[np.floating],
    accepted_y: NDArray[np.integer],
    accepted_cids: Sequence[str],
    batch_x: NDArray[np.floating],
    batch_y: NDArray[np.integer],
    batch_cids: Sequence[str],
    validation_x: NDArray[np.floating],
    validation_y: NDArray[np.integer],
    *,
    k: int = 5,
    near_factor: float = 0.1,
) -> Signals:
    ax = np.asarray(accepted_x, dtype=np.float64).reshape(len(accepted_x), -1)
    bx = np.asarray(batch_x, dtype=np.float64).reshape(len(batch_x), -1)
    vx = np.asarray(validation_x, dtype=np.float64).reshape(len(validation_x), -1)
    values = knn_shapley(
        np.concatenate([ax, bx]), np.concatenate([accepted_y, batch_y]), vx, validation_y, k=k
    )[len(ax) :]
    known = set(accepted_cids)
    exact = tuple(i for i, cid in enumerate(batch_cids) if cid in known)

    near: list[tuple[int, int, float]] = []
    mislabels: list[int] = []
    threshold = 0.0
    if len(ax) >= 2:
        _, self_dist = _nearest(ax, ax, 2)
        threshold = float(near_factor * np.median(self_dist[:, 1]))
        neighbours, dist = _nearest(bx, ax, k)
        for i in range(len(bx)):
            if i not in exact and dist[i, 0] <= threshold:
                near.append((i, int(neighbours[i, 0]), float(dist[i, 0])))
            majority, _ = Counter(int(accepted_y[j]) for j in neighbours[i]).most_common(1)[0]
            if values[i] < 0 and majority != int(batch_y[i]):
                mislabels.append(i)
    return Signals(
        knn_values=tuple(float(v) for v in values),
        knn_sum=float(values.sum()),
        knn_mean=float(values.mean()) if len(values) else 0.0,
        knn_negative=int((values < 0).sum()),
        exact_duplicates=exact,
        near_duplicates=tuple(near),
        suspected_mislabels=tuple(mislabels),
        k=k,
        near_threshold=threshold,
    )
