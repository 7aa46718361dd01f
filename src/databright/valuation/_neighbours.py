"""Nearest neighbours over item encodings too large to hold twice in memory.

The rows to search are a sequence of float32 blocks (NumPy arrays or cached
encodings on disk, :class:`~databright.ml.DiskRows`), read one tile at a time, so memory is
``O(queries x (tile + k))`` whatever the number of rows. Candidates are found
with float32 matrix products (``|a|^2 + |b|^2 - 2 a.b``) and then re-ranked by
their exact float64 distance computed pair by pair: the reported distances, and
the order (ties broken by row index), do not depend on the tiling or on how the
candidates were found, so a search merged from cached parts gives the same
bits as one search over everything.

The float32 candidate search keeps ``k + MARGIN`` rows per query: a true
neighbour is missed only when float32 rounding moves more than ``MARGIN``
rows ahead of it, which needs distances equal to about seven significant digits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from databright.ml import DiskRows, RowBlock

__all__ = ["Neighbours", "Rows", "merge", "nearest"]

#: Extra float32 candidates kept per query for the exact re-ranking.
MARGIN: Final = 16
#: Rows of the searched set per tile, and queries per block.
TILE_ROWS: Final = 8192
QUERY_BLOCK: Final = 512
#: The exact re-ranking reads a tile whole when at least one row in this many is
#: a candidate (else row by row), and computes float64 differences in pieces of
#: this many bytes, which stay in cache.
SPARSE_TILE: Final = 8
CACHE_BYTES: Final = 2**18

Rows = Sequence[RowBlock]


class Neighbours:
    """For each query, the indices (into the concatenated rows) and exact distances
    of its nearest rows, nearest first; ``-1`` and ``inf`` pad a short row."""

    __slots__ = ("distances", "indices")

    def __init__(self, indices: NDArray[np.int64], distances: NDArray[np.float64]) -> None:
        self.indices = indices
        self.distances = distances


def _flat(x: NDArray[np.floating]) -> NDArray[np.float32]:
    return np.ascontiguousarray(np.asarray(x).reshape(len(x), -1), dtype=np.float32)


def _tiles(rows: Rows) -> Iterator[tuple[int, NDArray[np.float32]]]:
    offset = 0
    for block in rows:
        for start in range(0, len(block), TILE_ROWS):
            yield offset + start, _flat(block[start : start + TILE_ROWS])
        offset += len(block)


def _rows_at(block: RowBlock, local: NDArray[np.int64]) -> NDArray[np.float32]:
    if isinstance(block, DiskRows):
        return block.take(local)  # reads each row once, forwards
    return np.asarray(np.take(block, local, axis=0), dtype=np.float32)


def _exact(queries: NDArray[np.float32], rows: Rows, candidates: NDArray[np.int64]) -> NDArray[np.float64]:
    """Exact float64 Euclidean distances of each query to its candidate rows
    (``-1``: none, distance ``inf``).

    Each distance is the sum of squared differences of one pair along a
    contiguous axis, so its bits depend on that pair alone. That leaves the
    order of the work free: the pairs are visited in row order, one tile of
    rows at a time — a tile holding many candidates is read whole, in one
    sequential read, a sparse one row by row — and computed in pieces small
    enough to stay in the processor's cache.
    """
    width = queries.shape[1]
    piece = max(1, CACHE_BYTES // max(1, width * 8))
    out = np.full(candidates.shape, np.inf, dtype=np.float64)
    out_flat, flat = out.reshape(-1), candidates.reshape(-1)
    pairs = np.flatnonzero(flat >= 0)
    pairs = pairs[np.argsort(flat[pairs], kind="stable")]
    wanted = flat[pairs]
    query_of = pairs // max(1, candidates.shape[1])
    q64 = queries.astype(np.float64)
    offset = 0
    for block in rows:
        for lo in range(0, len(block), TILE_ROWS):
            hi = min(lo + TILE_ROWS, len(block))
            first, last = np.searchsorted(wanted, [offset + lo, offset + hi])
            if first == last:
                continue
            local = wanted[first:last] - offset - lo
            unique = np.unique(local)
            if len(unique) * SPARSE_TILE >= hi - lo:
                picked, where = _flat(block[lo:hi]), local
            else:
                picked, where = _rows_at(block, unique + lo).reshape(len(unique), width), np.searchsorted(unique, local)
            for a in range(first, last, piece):
                z = min(a + piece, last)
                # float32 rows widened to float64 as they are subtracted: exact.
                diff = np.subtract(picked[where[a - first : z - first]], q64[query_of[a:z]])
                np.square(diff, out=diff)
                out_flat[pairs[a:z]] = np.sqrt(diff.sum(axis=-1))
        offset += len(block)
    return out


def _select(indices: NDArray[np.int64], dist: NDArray[np.float64], k: int) -> Neighbours:
    # Order by (distance, index); padding (-1, inf) goes last.
    key_index = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    order = np.lexsort((key_index, dist), axis=-1)[:, :k]
    return Neighbours(np.take_along_axis(indices, order, 1), np.take_along_axis(dist, order, 1))


def nearest(
    queries: NDArray[np.floating], rows: Rows, k: int, *, exclude: NDArray[np.int64] | None = None,
    offset: int = 0,
) -> Neighbours:
    """The ``k`` nearest rows of each query, numbered from ``offset``. With
    ``exclude``, query ``i`` is row ``exclude[i]`` and is not its own neighbour."""
    q = _flat(queries)
    total = sum(len(block) for block in rows)
    keep = min(k + MARGIN, total)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    out_d = np.full((len(q), k), np.inf, dtype=np.float64)
    for start in range(0, len(q), QUERY_BLOCK):
        block = q[start : start + QUERY_BLOCK]
        norms = np.einsum("qd,qd->q", block, block)
        best_i = np.full((len(block), 0), -1, dtype=np.int64)
        best_d = np.full((len(block), 0), np.inf, dtype=np.float32)
        for first, tile in _tiles(rows):
            d2 = norms[:, None] + np.einsum("td,td->t", tile, tile)[None, :] - 2 * (block @ tile.T)
            if exclude is not None:
                own = exclude[start : start + len(block)] - first
                mine = (own >= 0) & (own < len(tile))
                d2[np.flatnonzero(mine), own[mine]] = np.inf
            idx = np.broadcast_to(np.arange(first, first + len(tile)), d2.shape)
            cand_d = np.concatenate([best_d, d2], axis=1)
            cand_i = np.concatenate([best_i, idx], axis=1)
            if cand_d.shape[1] > keep:
                part = np.argpartition(cand_d, keep - 1, axis=1)[:, :keep]
                cand_d = np.take_along_axis(cand_d, part, 1)
                cand_i = np.take_along_axis(cand_i, part, 1)
            best_d, best_i = cand_d, cand_i
        best_i = np.where(np.isfinite(best_d), best_i, -1)
        found = _select(best_i, _exact(block, rows, best_i), k)
        width = found.indices.shape[1]
        out_i[start : start + len(block), :width] = np.where(found.indices >= 0, found.indices + offset, -1)
        out_d[start : start + len(block), :width] = found.distances
    return Neighbours(out_i, out_d)


def merge(first: Neighbours, second: Neighbours, k: int) -> Neighbours:
    """The ``k`` nearest of two searches of the same queries over disjoint rows
    (indices already global): the same result as one search over both."""
    return _select(
        np.concatenate([first.indices, second.indices], axis=1),
        np.concatenate([first.distances, second.distances], axis=1),
        k,
    )
