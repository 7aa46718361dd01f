"""The approximate neighbour index of a large dataset, at reduced size: recall,
exact distances, growth with acceptances, the same bits from disk and from scratch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from databright.ml import DiskRows
from databright.valuation import SignalCache, quality_signals
from databright.valuation import _index, _signals
from databright.valuation._index import NeighbourIndex, Quantizer
from databright.valuation._neighbours import nearest

SIZES = [(0, 600), (600, 1000), (1000, 1400)]


@pytest.fixture()
def small_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's parameters scaled down to a 1,400-item dataset."""
    for name, value in {"DIMENSIONS": 16, "CELLS": 32, "FIT_ROWS": 500, "PROBE": 6, "RERANK": 40,
                        "CODE_CHUNK": 256}.items():
        monkeypatch.setattr(_index, name, value)
    monkeypatch.setattr(_signals, "APPROXIMATE_ABOVE", 100)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def _blocks(x: np.ndarray, tmp_path: Path) -> list[DiskRows]:
    out = []
    for i, (lo, hi) in enumerate(SIZES):
        np.save(tmp_path / f"{i}.npy", x[lo:hi].reshape(-1, 8, 8))  # rows on disk, as the evaluator keeps them
        out.append(DiskRows(tmp_path / f"{i}.npy"))
    return out


def test_index_finds_near_duplicates_and_most_neighbours_with_exact_distances(
    small_index: None, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, _ = digits
    blocks = _blocks(x, tmp_path)
    key = ("scope", "a", "b", "c")
    queries = x[1400:]
    exact = nearest(queries, blocks, 5)
    approx = NeighbourIndex().nearest(key, blocks, queries, 5)
    recall = np.mean(approx.indices[:, 0] == exact.indices[:, 0])
    assert recall >= 0.9, recall
    same = approx.indices == exact.indices
    np.testing.assert_array_equal(approx.distances[same], exact.distances[same])  # exact where found
    assert (np.diff(approx.distances, axis=1) >= 0).all()
    # A near duplicate (a copy with a little noise) is found for every copied item.
    copies = x[[5, 250, 777, 1200, 1399]] + np.random.default_rng(0).normal(0, 0.01, (5, 64)).astype(np.float32)
    found = NeighbourIndex().nearest(key, blocks, copies, 1)
    assert list(found.indices[:, 0]) == [5, 250, 777, 1200, 1399]


def test_index_grows_with_acceptances_and_gives_the_same_bits_from_disk_or_scratch(
    small_index: None, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = digits
    blocks = _blocks(x, tmp_path)
    queries = x[1400:1500]
    coded: list[int] = []
    real = Quantizer.project

    def counting(self: Quantizer, rows: np.ndarray) -> np.ndarray:
        coded.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(Quantizer, "project", counting)
    grown = NeighbourIndex(tmp_path / "index")
    grown.nearest(("scope", "a", "b"), blocks[:2], queries, 5)
    assert sum(coded) == 1000 + len(queries)
    coded.clear()
    after = grown.nearest(("scope", "a", "b", "c"), blocks, queries, 5)
    assert sum(coded) == 400 + len(queries)  # only the newly accepted block is coded
    coded.clear()
    restarted = NeighbourIndex(tmp_path / "index").nearest(("scope", "a", "b", "c"), blocks, queries, 5)
    assert sum(coded) == len(queries)  # read back from disk
    scratch = NeighbourIndex().nearest(("scope", "a", "b", "c"), blocks, queries, 5)
    for other in (restarted, scratch):
        np.testing.assert_array_equal(other.indices, after.indices)
        np.testing.assert_array_equal(other.distances, after.distances)


def test_signals_through_the_index_flag_like_the_exact_search(
    small_index: None, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = digits
    blocks = _blocks(x, tmp_path)
    bx = np.concatenate([x[3:4] + 0.01, x[900:901] + 0.01, x[1400:1440]])
    by = np.concatenate([y[3:4], y[900:901], (y[1400:1440] + 4) % 10])
    bcids, cids = [f"b{i}" for i in range(42)], [f"a{i}" for i in range(1400)]
    args = (y[:1400], cids, bx, by, bcids, x[1500:], y[1500:])
    key = ("scope", "a", "b", "c")
    cached = quality_signals(blocks, *args, cache=SignalCache(tmp_path / "signals"), cache_key=key)
    fresh = quality_signals(blocks, *args)
    assert cached == fresh
    assert [n[:2] for n in cached.near_duplicates] == [(0, 3), (1, 900)]
    again = quality_signals(blocks, *args, cache=SignalCache(tmp_path / "signals"), cache_key=key)
    assert again == cached
