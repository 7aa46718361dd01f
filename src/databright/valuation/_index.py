"""An approximate nearest-neighbour index of the accepted items, for datasets too
large to scan in every evaluation.

Beyond :data:`APPROXIMATE_ABOVE` accepted items, a batch's nearest accepted
items (the near-duplicate and mislabel signals) are found through an inverted
file over compressed codes, then re-ranked exactly:

1. A *quantizer* is fitted once, on the first :data:`FIT_ROWS` accepted items
   (a prefix: it never changes as the dataset grows): their mean, the top
   :data:`DIMENSIONS` principal axes (float64 covariance, eigenvectors' signs
   fixed so the largest component is positive) and :data:`CELLS` centroids of
   the projected items (Lloyd's k-means, evenly spaced start, fixed iterations).
2. Each accepted block (one proposal's items) gets its *codes* — the projection
   of each item, float32 — and each item the cell of its nearest centroid. A
   block is coded once, when it is first searched after its acceptance, and
   kept in memory and on disk, so the index grows with acceptances instead of
   being rebuilt.
3. A query is projected, the :data:`PROBE` nearest cells are scanned by code
   distance, and the :data:`RERANK` nearest codes are re-ranked by their exact
   float64 distance (the same pairwise computation as the exact search), ties
   broken by index.

Everything is a deterministic function of the accepted items and their order
(no random draws; blocks coded in fixed chunks), so an index read back from
disk, built up acceptance by acceptance, or built from scratch (``evaluate
--verify``) answers with the same bits. The distances reported are exact; what
is approximate is which items are found: a true neighbour is missed when its
code is not among the query's :data:`RERANK` nearest in the probed cells.
Projection can only shrink distances, and a near duplicate is near in every
projection, so near duplicates are found far more reliably than ordinary
neighbours (docs/scale.md gives the measured recall).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from databright.ml import RowBlock
from databright.valuation._neighbours import Neighbours, Rows, _exact, _select

__all__ = ["NeighbourIndex", "Quantizer", "replace_file"]

#: Accepted items above which the batch's neighbours are searched through the index.
APPROXIMATE_ABOVE: Final = 1 << 18
#: The quantizer is fitted on this many accepted items (the first ones).
FIT_ROWS: Final = 1 << 14
DIMENSIONS: Final = 64
CELLS: Final = 1024
KMEANS_ITERATIONS: Final = 12
#: Cells scanned per query, and codes per query re-ranked exactly.
PROBE: Final = 32
RERANK: Final = 128
#: Rows coded per step: fixed, so a block's codes do not depend on who asked.
CODE_CHUNK: Final = 8192


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _digest(key: tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:32]


def _sq_distances(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.floating]:
    out: NDArray[np.floating] = np.einsum("nd,nd->n", a, a)[:, None] + np.einsum("cd,cd->c", b, b)[None, :] - 2 * (a @ b.T)
    return out


@dataclass(frozen=True)
class Quantizer:
    """Mean, principal axes and cell centroids fitted on a prefix of the accepted items."""

    mean: NDArray[np.float32]
    basis: NDArray[np.float32]
    centroids: NDArray[np.float32]

    @classmethod
    def fit(cls, sample: NDArray[np.floating]) -> Quantizer:
        x = np.asarray(sample, dtype=np.float64).reshape(len(sample), -1)
        mean = x.mean(axis=0)
        centred = x - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)
        basis = vectors[:, ::-1][:, : min(DIMENSIONS, x.shape[1])]
        # An eigenvector's sign is arbitrary: fix it so the largest component is positive.
        signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
        basis = basis * np.where(signs == 0, 1.0, signs)
        codes = centred @ basis
        start = np.unique(np.linspace(0, len(codes) - 1, min(CELLS, len(codes))).round().astype(np.int64))
        centroids = codes[start].copy()
        for _ in range(KMEANS_ITERATIONS):
            cell = _sq_distances(codes, centroids).argmin(axis=1)
            counts = np.bincount(cell, minlength=len(centroids))
            sums = np.zeros_like(centroids)
            np.add.at(sums, cell, codes)
            filled = counts > 0  # an empty cell keeps its centroid
            centroids[filled] = sums[filled] / counts[filled, None]
        return cls(mean.astype(np.float32), basis.astype(np.float32), centroids.astype(np.float32))

    def project(self, x: NDArray[np.floating]) -> NDArray[np.float32]:
        flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return np.asarray((flat - self.mean) @ self.basis, dtype=np.float32)

    def cells(self, codes: NDArray[np.float32]) -> NDArray[np.int32]:
        return np.asarray(_sq_distances(codes, self.centroids).argmin(axis=1), dtype=np.int32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, basis=self.basis, centroids=self.centroids)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Quantizer:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return cls(saved["mean"], saved["basis"], saved["centroids"])


class _Coded:
    """One block's codes, its items grouped by cell."""

    def __init__(self, codes: NDArray[np.float32], cells: NDArray[np.int32], n_cells: int) -> None:
        self.codes, self.cells = codes, cells
        self.order = np.argsort(cells, kind="stable")
        self.starts = np.searchsorted(cells[self.order], np.arange(n_cells + 1))

    def members(self, probe: NDArray[np.int64]) -> NDArray[np.int64]:
        """Local indices of the items in the ``probe`` cells."""
        parts = [self.order[self.starts[c] : self.starts[c + 1]] for c in probe]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


class NeighbourIndex:
    """The quantizer and block codes of the accepted items, kept in memory and,
    with a ``directory``, on disk (``<quantizer digest>/quantizer.npz`` and one
    ``.npz`` of codes per block)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._quantizers: dict[str, Quantizer] = {}
        self._coded: dict[tuple[str, str], _Coded] = {}

    def _quantizer(self, key: tuple[str, ...], blocks: Rows) -> tuple[str, Quantizer]:
        """The quantizer of the first :data:`FIT_ROWS` rows, named by the blocks that hold them."""
        covering, held = 0, 0
        while held < FIT_ROWS and covering < len(blocks):
            held += len(blocks[covering])
            covering += 1
        name = _digest(("quantizer", key[0], *key[1 : 1 + covering]))
        if name not in self._quantizers:
            path = self.directory / name / "quantizer.npz" if self.directory else None
            if path is not None and path.is_file():
                quantizer = Quantizer.from_bytes(path.read_bytes())
            else:
                parts, want = [], FIT_ROWS
                for block in blocks[:covering]:
                    width = int(np.prod(block.shape[1:], dtype=np.int64))
                    parts.append(np.asarray(block[: min(want, len(block))], dtype=np.float32).reshape(-1, width))
                    want -= len(parts[-1])
                quantizer = Quantizer.fit(np.concatenate(parts))
                if path is not None:
                    replace_file(path, quantizer.to_bytes())
            self._quantizers = {name: quantizer}  # one dataset's quantizer at a time
        return name, self._quantizers[name]

    def _block(self, qname: str, quantizer: Quantizer, name: str, rows: RowBlock) -> _Coded:
        key = (qname, name)
        if key not in self._coded:
            path = self.directory / qname / f"{_digest((name,))}.npz" if self.directory else None
            if path is not None and path.is_file():
                with np.load(path, allow_pickle=False) as saved:
                    codes, cells = saved["codes"], saved["cells"]
            else:
                codes = np.empty((len(rows), quantizer.basis.shape[1]), dtype=np.float32)
                for start in range(0, len(rows), CODE_CHUNK):
                    codes[start : start + CODE_CHUNK] = quantizer.project(rows[start : start + CODE_CHUNK])
                cells = np.concatenate([quantizer.cells(codes[s : s + CODE_CHUNK])
                                        for s in range(0, len(codes), CODE_CHUNK)] or [np.zeros(0, np.int32)])
                if path is not None:
                    buffer = io.BytesIO()
                    np.savez(buffer, codes=codes, cells=cells)
                    replace_file(path, buffer.getvalue())
            self._coded[key] = _Coded(codes, cells, len(quantizer.centroids))
        return self._coded[key]

    def nearest(self, key: tuple[str, ...], blocks: Rows, queries: NDArray[np.floating], k: int) -> Neighbours:
        """The (approximately) ``k`` nearest accepted rows of each query, with exact
        distances. ``key``: a name for the scope, then one name per block."""
        if len(key) != len(blocks) + 1:
            raise ValueError("key names the scope, then each block")
        qname, quantizer = self._quantizer(key, blocks)
        # Only the current blocks stay in memory: a block leaves once it is no longer accepted.
        wanted = {(qname, name) for name in key[1:]}
        self._coded = {kk: v for kk, v in self._coded.items() if kk in wanted}
        coded = [self._block(qname, quantizer, name, block) for name, block in zip(key[1:], blocks, strict=True)]
        offsets = np.cumsum([0, *(len(b) for b in blocks)])
        flat = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(len(queries), -1))
        projected = quantizer.project(flat)
        probes = np.argsort(_sq_distances(projected, quantizer.centroids), axis=1, kind="stable")[:, :PROBE]
        candidates = np.full((len(flat), RERANK), -1, dtype=np.int64)
        for i, probe in enumerate(probes):
            found = [(offsets[b] + local, part.codes[local])
                     for b, part in enumerate(coded) for local in [part.members(probe)] if len(local)]
            if not found:
                continue
            index = np.concatenate([f[0] for f in found])
            diff = np.concatenate([f[1] for f in found]) - projected[i]
            order = np.lexsort((index, np.einsum("nd,nd->n", diff, diff)))[:RERANK]
            candidates[i, : len(order)] = index[order]
        exact = _select(candidates, _exact(flat, blocks, candidates), min(k, RERANK))
        out_i = np.full((len(flat), k), -1, dtype=np.int64)
        out_d = np.full((len(flat), k), np.inf, dtype=np.float64)
        out_i[:, : exact.indices.shape[1]], out_d[:, : exact.indices.shape[1]] = exact.indices, exact.distances
        return Neighbours(out_i, out_d)

