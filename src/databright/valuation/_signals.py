"""Quality signals shown to shareholders before they vote.

For a proposed batch against the accepted data:

- KNN-Shapley values of the batch's items (Jia et al., 2019), computed with the
  accepted items and the batch as training set and the validation split as test
  set: their sum, mean and the number of negative items;
- exact duplicates: items whose CID is already accepted;
- near duplicates: items whose nearest accepted neighbour (Euclidean, in the
  model's input encoding) is closer than ``near_factor`` times the median
  nearest-neighbour distance among accepted items (among an evenly spaced
  sample of ``THRESHOLD_SAMPLE`` of them in a larger dataset);
- suspected mislabels: items with a negative KNN-Shapley value whose label
  disagrees with the majority label of their ``k`` nearest accepted neighbours.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.ml import DiskRows, RowBlock
from databright.valuation._knn_shapley import knn_shapley
from databright.valuation._index import APPROXIMATE_ABOVE, NeighbourIndex, replace_file
from databright.valuation._knn_truncated import knn_shapley_truncated
from databright.valuation._neighbours import Neighbours, Rows, merge, nearest

__all__ = ["SignalCache", "Signals", "quality_signals"]


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
    #: Bound on the error of each KNN-Shapley value (0.0: exact).
    knn_error_bound: float = field(default=0.0)

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


#: Up to this many training values (items x dimensions, float64) KNN-Shapley is
#: computed exactly over all of them; beyond, over each test point's nearest
#: ``KNN_CANDIDATES`` training items, with the error bound of :mod:`._knn_truncated`.
EXACT_KNN_ELEMENTS = 1 << 24
KNN_CANDIDATES = 1024
#: The typical neighbour distance is the median over at most this many accepted
#: items, evenly spaced in acceptance order (all of them in a smaller dataset).
THRESHOLD_SAMPLE = 512


class SignalCache:
    """What the signals need from the accepted items alone, kept between evaluations
    while the accepted set only grows: each validation point's nearest accepted
    items (extended, not recomputed, when proposals are accepted) and the
    near-duplicate threshold. Results do not depend on whether it was used.

    With a ``directory`` the cache is also kept on disk (NumPy ``.npz`` and JSON
    files named by a digest of their key), so one-shot ``evaluate`` commands and
    a restarted service find it too. A large dataset's neighbour index
    (:class:`NeighbourIndex`) lives here as well, under ``index/``.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.index = NeighbourIndex(directory / "index" if directory is not None else None)
        self._validation: dict[tuple[str, ...], Neighbours] = {}
        self._threshold: dict[tuple[str, ...], float] = {}

    def validation_neighbours(
        self, key: tuple[str, ...], blocks: Rows, queries: NDArray[np.float32], count: int
    ) -> Neighbours:
        """``key``: a name for everything but the accepted items (spec, validation
        split), then one name per block of ``blocks``."""
        done, known_found = key[:1], None
        for length in range(len(key), 1, -1):  # the longest prefix already searched
            known_found = self._load(key[:length])
            if known_found is not None:
                done = key[:length]
                break
        if done == key and known_found is not None:
            return known_found
        known = len(done) - 1
        found = nearest(queries, blocks[known:], count, offset=sum(len(b) for b in blocks[:known]))
        if known_found is not None:
            found = merge(known_found, found, count)
        self._validation = {key: found}  # the accepted set only grows: older prefixes are done with
        self._save(key, found)
        return found

    def threshold(self, key: tuple[str, ...], compute: Callable[[], float]) -> float:
        if key not in self._threshold:
            path = self._path(key, ".threshold.json")
            if path is not None and path.is_file():
                value = float(json.loads(path.read_text())["threshold"])
            else:
                value = compute()
                if path is not None:
                    replace_file(path, json.dumps({"key": list(key), "threshold": value}).encode())
            self._threshold = {key: value}
        return self._threshold[key]

    def _path(self, key: tuple[str, ...], suffix: str) -> Path | None:
        if self.directory is None:
            return None
        digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:32]
        return self.directory / f"{digest}{suffix}"

    def _load(self, key: tuple[str, ...]) -> Neighbours | None:
        if key in self._validation:
            return self._validation[key]
        path = self._path(key, ".npz")
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(str(saved["key"])) != list(key):
                return None
            return Neighbours(saved["indices"].astype(np.int64), saved["distances"].astype(np.float64))

    def _save(self, key: tuple[str, ...], found: Neighbours) -> None:
        path = self._path(key, ".npz")
        if path is not None:
            buffer = io.BytesIO()
            np.savez(buffer, key=np.array(json.dumps(list(key))), indices=found.indices, distances=found.distances)
            replace_file(path, buffer.getvalue())


def _as_blocks(x: NDArray[np.floating] | Rows) -> list[RowBlock]:
    # Rows on disk stay there: nothing is read until a tile is.
    blocks = [x] if isinstance(x, np.ndarray) else list(x)
    return [b if isinstance(b, DiskRows) else np.asarray(b).reshape(len(b), -1) for b in blocks]


def _typical_distance(blocks: Rows, n: int) -> float:
    sample = np.unique(np.linspace(0, n - 1, min(n, THRESHOLD_SAMPLE)).round().astype(np.int64))
    queries = np.stack([_row(blocks, int(i)) for i in sample])
    found = nearest(queries, blocks, 1, exclude=sample)
    return float(np.median(found.distances[:, 0]))


def _row(blocks: Rows, index: int) -> NDArray[np.float32]:
    for block in blocks:
        if index < len(block):
            return np.asarray(block[index], dtype=np.float32).reshape(-1)
        index -= len(block)
    raise IndexError(index)


def quality_signals(
    accepted_x: NDArray[np.floating] | Rows,
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
    cache: SignalCache | None = None,
    cache_key: tuple[str, ...] | None = None,
) -> Signals:
    """The signals of a batch. ``accepted_x`` may be one array or a list of blocks
    (memory maps of cached encodings); ``cache`` keeps what depends on the
    accepted items alone, under ``cache_key`` (see :meth:`SignalCache.validation_neighbours`)."""
    blocks = _as_blocks(accepted_x)
    n = sum(len(b) for b in blocks)
    if cache_key is not None and len(cache_key) != len(blocks) + 1:
        raise ValueError("cache_key names the evaluation's scope, then each accepted block")
    bx = np.ascontiguousarray(np.asarray(batch_x).reshape(len(batch_x), -1), dtype=np.float32)
    vx = np.ascontiguousarray(np.asarray(validation_x).reshape(len(validation_x), -1), dtype=np.float32)
    train_y = np.concatenate([np.asarray(accepted_y), np.asarray(batch_y)])
    bound = 0.0
    if (n + len(bx)) * bx.shape[1] <= EXACT_KNN_ELEMENTS:
        ax = np.concatenate([np.asarray(b, dtype=np.float64).reshape(len(b), -1) for b in blocks])
        values = knn_shapley(np.concatenate([ax, bx.astype(np.float64)]), train_y, vx.astype(np.float64),
                             validation_y, k=k)[n:]
    else:
        count = min(KNN_CANDIDATES, n + len(bx))
        cache = cache if cache is not None and cache_key is not None else SignalCache()
        key = cache_key if cache_key is not None else ("",)
        from_accepted = cache.validation_neighbours(key, blocks, vx, min(count, n))
        from_batch = nearest(vx, [bx], min(count, len(bx)), offset=n)
        all_values, bound = knn_shapley_truncated(merge(from_accepted, from_batch, count), train_y,
                                                  np.asarray(validation_y), k)
        values = all_values[n:]
    known = set(accepted_cids)
    exact = tuple(i for i, cid in enumerate(batch_cids) if cid in known)

    near: list[tuple[int, int, float]] = []
    mislabels: list[int] = []
    threshold = 0.0
    if n >= 2:
        if cache is not None and cache_key is not None:
            typical = cache.threshold(cache_key, lambda: _typical_distance(blocks, n))
        else:
            typical = _typical_distance(blocks, n)
        threshold = float(near_factor * typical)
        if n > APPROXIMATE_ABOVE:  # through the index: approximate, see _index
            index = cache.index if cache is not None and cache_key is not None else NeighbourIndex()
            names = cache_key if cache_key is not None else ("", *(str(i) for i in range(len(blocks))))
            found = index.nearest(names, blocks, bx, min(k, n))
        else:
            found = nearest(bx, blocks, min(k, n))
        neighbours, dist = found.indices, found.distances
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
        knn_error_bound=bound,
    )
