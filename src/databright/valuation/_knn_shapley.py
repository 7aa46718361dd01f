r"""Exact Shapley values of training points for a K-nearest-neighbour classifier.

Jia et al. (2019) [1]_ showed that, for the utility of an unweighted KNN
classifier, Shapley values need no sampling: they follow from one sort per test
point.  For a test point $(x, y)$ let $\alpha_1, \dots, \alpha_N$ be the training
points ordered by increasing Euclidean distance to $x$, and let the utility of a
subset $S$ be the fraction of its $K$ nearest members that carry the label $y$,

$$
u(S) = \frac{1}{K} \sum_{k=1}^{\min(K, |S|)} \mathbb{1}[y_{\alpha_k(S)} = y].
$$

Writing $m_i = \mathbb{1}[y_{\alpha_i} = y]$, Theorem 1 of the paper gives the
Shapley values by a recursion from the farthest point inwards,

$$
s_{\alpha_N} = \frac{m_N}{N}, \qquad
s_{\alpha_i} = s_{\alpha_{i+1}} + \frac{m_i - m_{i+1}}{K}\,\frac{\min(K, i)}{i}
             = s_{\alpha_{i+1}} + \frac{m_i - m_{i+1}}{\max(K, i)}.
$$

The values reported for a test set are the mean over its points; they sum to
$u(D) - u(\varnothing)$, the mean fraction of matching labels among the
$\min(K, N)$ nearest neighbours.  The base case above assumes $K \le N$: when
$K > N$ every point is always among the neighbours, $u$ is additive and the exact
value of the farthest point is $m_N / K$.  This module uses
$s_{\alpha_N} = m_N / \max(K, N)$, which is both cases at once; it agrees with
pyDVL's ``KNNShapleyValuation`` whenever $K \le N$ (pyDVL keeps $m_N / N$ for
$K > N$, which breaks efficiency).

The implementation works on tiles of test points at a time so memory stays
bounded, and on each tile:

* squared distances come from one matrix product,
  $\|a\|^2 + \|b\|^2 - 2\,a \cdot b$, clipped at zero;
* each row is ordered by distance, ties broken by training index.  Rather than a
  stable ``argsort`` (slow for floats), the distance's bits and the training
  index are packed into one ``uint64`` key and the keys are sorted as plain
  integers; distances too close to tell apart in the bits that remain are put
  in exact order afterwards, so the order is exactly that of
  ``np.argsort(d, kind="stable")``;
* the recursion is a reverse cumulative sum along each row, in float64, and the
  values are scattered back to training indices.

Tiles run on a thread pool (the sort and the scatter release the GIL), with BLAS
held to one thread meanwhile, and buffers reused from tile to tile.  Their rows
are added to the result one test point at a time in test order, so the result
does not depend on the tile size or the number of threads.

References:
    .. [1] Jia, R., Dao, D., Wang, B., Hubis, F. A., Gurel, N. M., Li, B.,
       Zhang, C., Spanos, C. J. and Song, D., 2019. `Efficient Task-Specific Data
       Valuation for Nearest Neighbor Algorithms
       <https://doi.org/10.14778/3342263.3342637>`_. Proceedings of the VLDB
       Endowment, 12(11), pp. 1610-1623.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, Self

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from threadpoolctl import threadpool_limits

__all__ = ["KNNShapley", "knn_shapley"]

#: Working memory that all tiles in flight may use together, by default.
TILE_MEMORY_BYTES: Final = 256 * 2**20

_DTYPES: Final = (np.dtype(np.float32), np.dtype(np.float64))


def knn_shapley(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike,
    y_test: ArrayLike,
    k: int = 5,
    *,
    dtype: DTypeLike = np.float64,
    tile_size: int | None = None,
    n_jobs: int | None = None,
) -> NDArray[np.float64]:
    """Exact KNN-Shapley value of every training point, averaged over the test set.

    Args:
        x_train: Training features, shape ``(n_train, n_features)``.
        y_train: Training labels, shape ``(n_train,)``; any comparable values.
        x_test: Test features, shape ``(n_test, n_features)``.
        y_test: Test labels, shape ``(n_test,)``.
        k: Number of neighbours of the classifier whose utility is valued.
        dtype: ``np.float64`` (default) or ``np.float32`` for the distances;
            values are always accumulated in float64.
        tile_size: Test points per tile.  By default, as many as keep the tiles in
            flight within ``TILE_MEMORY_BYTES``, with at least one tile per thread.
        n_jobs: Threads to use; by default, the CPUs this process may run on.

    Returns:
        Array of shape ``(n_train,)``: the Shapley value of each training point.

    Raises:
        ValueError: If an argument has the wrong shape, type or range.
    """
    xtr, ytr = _check_xy(x_train, y_train, "train", dtype)
    xte, yte = _check_xy(x_test, y_test, "test", dtype)
    k = _check_positive(k, "k")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"x_train has {xtr.shape[1]} features but x_test has {xte.shape[1]}"
        )
    n_train, n_test = len(xtr), len(xte)
    workers = _check_positive(n_jobs, "n_jobs") if n_jobs is not None else _n_cpus()
    codes_train, codes_test = _encode_labels(ytr, yte)
    if tile_size is None:
        per_row = _Workspace.bytes_per_pair(xtr.dtype, codes_train.dtype) * n_train
        # Within the memory budget, and at least one tile per thread.
        tile_size = min(max(1, TILE_MEMORY_BYTES // (per_row * workers)),
                        -(-n_test // workers))
    else:
        tile_size = _check_positive(tile_size, "tile_size")
    tile_size = min(tile_size, n_test)
    starts = range(0, n_test, tile_size)
    workers = min(workers, len(starts))

    norms_train = np.einsum("ij,ij->i", xtr, xtr)
    norms_test = np.einsum("ij,ij->i", xte, xte)
    if not (np.isfinite(norms_train).all() and np.isfinite(norms_test).all()):
        raise ValueError("features are too large: their squared norms overflow")
    # 1 / max(K, i) for ranks i = 1..N: the weight of the i-th step of the recursion.
    weights = 1.0 / np.maximum(k, np.arange(1, n_train + 1, dtype=np.float64))
    # Scaling by -2 is exact, so (-2 x) @ y.T is bitwise -2 (x @ y.T), one pass less.
    xte_m2 = -2 * xte

    def tile(ws: _Workspace, start: int) -> NDArray[np.float64]:
        stop = min(start + tile_size, n_test)
        dist = ws.distances(xte_m2[start:stop], norms_test[start:stop], xtr,
                            norms_train)
        order = ws.order(dist)
        return ws.values(order, codes_train, codes_test[start:stop], weights)

    spaces = [_Workspace(tile_size, n_train, xtr.dtype, codes_train.dtype)
              for _ in range(workers)]
    values = np.zeros(n_train, dtype=np.float64)
    # At most one tile in flight per workspace; rows are added in test order so
    # the result does not depend on tile size or thread count.
    pending: deque[Future[NDArray[np.float64]]] = deque()
    # The threads already share the cores: a multithreaded BLAS inside each would
    # oversubscribe them, and OpenBLAS's spinning threads starve the sorts.
    blas = (threadpool_limits(1, user_api="blas") if workers > 1
            else contextlib.nullcontext())
    with blas, ThreadPoolExecutor(max_workers=workers) as pool:
        for i, start in enumerate(starts):
            if len(pending) == workers:
                _accumulate(values, pending.popleft().result())
            pending.append(pool.submit(tile, spaces[i % workers], start))
        while pending:
            _accumulate(values, pending.popleft().result())
    values /= n_test
    return values


class KNNShapley:
    """Exact Shapley values for a KNN classifier, shaped like a pyDVL valuation.

    A thin wrapper over :func:`knn_shapley`: the test set is fixed at
    construction, ``fit`` values a training set and the values land on
    ``result``.

    Example::

        valuation = KNNShapley(x_test, y_test, k=5).fit(x_train, y_train)
        valuation.result  # one value per training point

    Args:
        x_test: Test features, shape ``(n_test, n_features)``.
        y_test: Test labels, shape ``(n_test,)``.
        k: Number of neighbours.
        dtype: Dtype of the distances, ``np.float64`` or ``np.float32``.
        tile_size: Test points per tile; see :func:`knn_shapley`.
        n_jobs: Threads to use; see :func:`knn_shapley`.
    """

    def __init__(
        self,
        x_test: ArrayLike,
        y_test: ArrayLike,
        k: int = 5,
        *,
        dtype: DTypeLike = np.float64,
        tile_size: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.x_test, self.y_test = _check_xy(x_test, y_test, "test", dtype)
        self.k = _check_positive(k, "k")
        self.dtype = dtype
        self.tile_size = tile_size
        self.n_jobs = n_jobs
        self._result: NDArray[np.float64] | None = None

    def fit(self, x_train: ArrayLike, y_train: ArrayLike) -> Self:
        """Compute the value of every training point; see :func:`knn_shapley`."""
        self._result = knn_shapley(
            x_train, y_train, self.x_test, self.y_test, self.k,
            dtype=self.dtype, tile_size=self.tile_size, n_jobs=self.n_jobs,
        )
        return self

    @property
    def result(self) -> NDArray[np.float64]:
        """Values of the training points passed to the last ``fit``."""
        if self._result is None:
            raise RuntimeError("KNNShapley has no result yet: call fit() first")
        return self._result


class _Workspace:
    """Buffers for one tile, reused from tile to tile.

    Allocating fresh 100 MB arrays per tile costs page faults and unmaps that
    serialise the threads; reusing buffers lets two threads run twice as fast.
    """

    def __init__(
        self, rows: int, n: int, dtype: np.dtype[Any], code_dtype: np.dtype[Any],
    ) -> None:
        self._dist = np.empty((rows, n), dtype)
        self._keys = np.empty((rows, n), np.uint64)
        self._codes = np.empty((rows, n), code_dtype)
        self._flags = np.empty((rows, n), np.bool_)
        self._steps = np.empty((rows, n), np.int8)
        self._values = np.empty((rows, n), np.float64)
        self._scattered = np.empty((rows, n), np.float64)

    @staticmethod
    def bytes_per_pair(dtype: np.dtype[Any], code_dtype: np.dtype[Any]) -> int:
        return dtype.itemsize + 8 + code_dtype.itemsize + 1 + 1 + 8 + 8

    def distances(
        self, x_m2: NDArray[np.floating], norms_x: NDArray[np.floating],
        y: NDArray[np.floating], norms_y: NDArray[np.floating],
    ) -> NDArray[np.floating]:
        """Squared distances between rows of x (given as -2 x) and rows of y."""
        dist = self._dist[: len(x_m2)]
        np.matmul(x_m2, y.T, out=dist)
        dist += norms_y
        dist += norms_x[:, None]
        # Rounding can push near-duplicates below zero; a distance never is.
        return np.maximum(dist, 0, out=dist)

    def order(self, dist: NDArray[np.floating]) -> NDArray[np.int64]:
        """Each row's column indices by increasing distance, ties by index.

        The same as ``np.argsort(dist, axis=1, kind="stable")``, about ten
        times faster: for non-negative floats the bit pattern orders like the
        value, so the bits (sign dropped) go in the high end of a ``uint64``, the
        column index in the low ``index_bits``, and the keys are sorted as
        integers.  In float64 the index displaces a few low mantissa bits, so
        distances that differ only there share a key prefix; those rare runs are
        re-sorted exactly afterwards.
        """
        rows, n = dist.shape
        index_bits = max(1, (n - 1).bit_length())
        low = np.uint64((1 << index_bits) - 1)
        keys = self._keys[:rows]
        if dist.dtype == np.float32:
            keys[...] = dist.view(np.uint32)
            keys <<= np.uint64(33)  # 31 value bits on top, 33 free bits below
            free_bits = 33
        else:
            np.left_shift(dist.view(np.uint64), np.uint64(1), out=keys)
            free_bits = 1
        truncated = index_bits > free_bits
        if truncated:
            keys &= ~low
        keys |= np.arange(n, dtype=np.uint64)
        keys.sort(axis=1)
        links = None
        if truncated and n > 1:
            xor = self._values[:rows, :-1].view(np.uint64)
            same_prefix = self._flags[:rows, :-1]
            np.bitwise_xor(keys[:, 1:], keys[:, :-1], out=xor)
            np.less_equal(xor, low, out=same_prefix)
            if same_prefix.any():
                link_rows, link_cols = np.nonzero(same_prefix)
                links = link_rows * n + link_cols
        keys &= low
        order = keys.view(np.int64)
        if links is not None:
            _sort_runs_exactly(order, dist, links)
        return order

    def values(
        self, order: NDArray[np.int64], codes_train: NDArray[np.integer],
        codes_test: NDArray[np.integer], weights: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Per-test-point Shapley values of a tile, indexed by training point."""
        rows = len(order)
        codes = self._codes[:rows]
        np.take(codes_train, order, out=codes, mode="clip")  # "raise" would buffer
        match = self._flags[:rows]
        np.equal(codes, codes_test[:, None], out=match)
        m = match.view(np.int8)
        steps, values = self._steps[:rows], self._values[:rows]
        # step_i = (m_i - m_{i+1}) / max(K, i), with m_{N+1} = 0 for the last.
        np.subtract(m[:, :-1], m[:, 1:], out=steps[:, :-1])
        steps[:, -1] = m[:, -1]
        np.multiply(steps, weights, out=values)
        # s_i = s_{i+1} + step_i: a cumulative sum from the far end, in place.
        backwards = values[:, ::-1]
        np.cumsum(backwards, axis=1, out=backwards)
        scattered = self._scattered[:rows]
        for row_out, row_order, row_values in zip(scattered, order, values):
            row_out[row_order] = row_values
        return scattered


def _sort_runs_exactly(
    order: NDArray[np.int64], dist: NDArray[np.floating], links: NDArray[np.intp],
) -> None:
    """Re-sort by exact distance, then index, the runs of positions in ``order``
    (flattened) where each linked position p and p + 1 share a key prefix."""
    n = order.shape[1]
    members = np.union1d(links, links + 1)
    run = np.cumsum(~np.isin(members - 1, links))
    flat = order.reshape(-1)
    index = flat[members]
    exact = dist[members // n, index]
    flat[members] = index[np.lexsort((index, exact, run))]


def _accumulate(total: NDArray[np.float64], rows: NDArray[np.float64]) -> None:
    for row in rows:
        total += row


def _encode_labels(
    y_train: NDArray[np.generic], y_test: NDArray[np.generic],
) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
    """Labels as small integer codes, so that gathering them is cheap."""
    try:
        classes, codes = np.unique(np.concatenate([y_train, y_test]),
                                   return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"y_train and y_test cannot be compared: {exc}") from exc
    codes = codes.reshape(-1).astype(np.min_scalar_type(max(len(classes) - 1, 0)))
    return codes[: len(y_train)], codes[len(y_train):]


def _check_xy(
    x: ArrayLike, y: ArrayLike, name: str, dtype: DTypeLike,
) -> tuple[NDArray[np.floating], NDArray[np.generic]]:
    dtype = np.dtype(dtype)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    if x_arr.ndim != 2:
        raise ValueError(
            f"x_{name} must be 2-D (n_samples, n_features), got shape {x_arr.shape}"
        )
    if x_arr.shape[0] == 0 or x_arr.shape[1] == 0:
        raise ValueError(f"x_{name} is empty (shape {x_arr.shape})")
    if not (np.issubdtype(x_arr.dtype, np.integer)
            or np.issubdtype(x_arr.dtype, np.floating)
            or x_arr.dtype == np.bool_):
        raise ValueError(f"x_{name} must be real numbers, not {x_arr.dtype}")
    x_arr = np.ascontiguousarray(x_arr, dtype=dtype)
    if not np.isfinite(x_arr).all():
        raise ValueError(f"x_{name} contains NaN or infinity")
    if y_arr.ndim != 1:
        raise ValueError(f"y_{name} must be 1-D, got shape {y_arr.shape}")
    if len(y_arr) != len(x_arr):
        raise ValueError(
            f"x_{name} has {len(x_arr)} samples but y_{name} has {len(y_arr)} labels"
        )
    return x_arr, y_arr


def _check_positive(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _n_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
