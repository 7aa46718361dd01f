r"""KNN-Shapley values from each test point's nearest training points only.

The exact recursion of Jia et al. (PVLDB 2019; see :mod:`._knn_shapley`) runs
over every training point in distance order. For a test point, with
$m_i = \mathbb{1}[y_{\alpha_i} = y]$ and $i \ge K$, unrolling the recursion gives

$$
s_{\alpha_i} = \frac{m_i}{i} - \sum_{j > i} \frac{m_j}{j(j-1)}
\in \Big[-\big(\tfrac1i - \tfrac1N\big),\ \tfrac1i\Big],
$$

so a point far from the test point has a value of at most $1/i$ in magnitude.
Keeping only the $L$ nearest training points (the paper's truncation, which its
LSH variant also uses), setting $\hat s_{\alpha_L} = 0$ and running the same
recursion inwards changes every kept point's value by exactly $s_{\alpha_L}$ and
leaves out points whose values are below $1/L$: the error of every value, for
every test point and so for their mean, is at most $1/L$ (for $L \ge K$).
When $L$ covers the whole training set the result is the exact value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from databright.valuation._neighbours import Neighbours

__all__ = ["knn_shapley_truncated"]


def knn_shapley_truncated(
    neighbours: Neighbours, y_train: NDArray[np.integer], y_test: NDArray[np.integer], k: int
) -> tuple[NDArray[np.float64], float]:
    """Values of all training points and the bound on their error (0.0 when exact).

    ``neighbours`` holds, for each test point, its ``L`` nearest training points in
    order (indices into ``y_train``).
    """
    n = len(y_train)
    order = neighbours.indices
    tests, length = order.shape
    if length < min(n, k) or (order < 0).any():
        raise ValueError("each test point needs its nearest min(n, L) training points, L >= k")
    exact = length >= n
    matches = (np.asarray(y_train)[order] == np.asarray(y_test)[:, None]).astype(np.float64)
    ranks = np.arange(1, length + 1, dtype=np.float64)
    weight = 1.0 / np.maximum(k, ranks)
    values = np.empty((tests, length), dtype=np.float64)
    values[:, -1] = matches[:, -1] / max(k, n) if exact else 0.0
    steps = (matches[:, :-1] - matches[:, 1:]) * weight[:-1]
    values[:, :-1] = values[:, -1:] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
    total = np.bincount(order.reshape(-1), weights=values.reshape(-1), minlength=n) / tests
    return total, 0.0 if exact else 1.0 / length
