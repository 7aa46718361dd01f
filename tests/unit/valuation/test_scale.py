"""Signals over datasets too large for the quadratic search: tiled neighbours,
truncated KNN-Shapley, a cache that grows with the accepted set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from databright.valuation import SignalCache, knn_shapley, quality_signals
from databright.valuation import _neighbours, _signals
from databright.valuation._knn_truncated import knn_shapley_truncated
from databright.valuation._neighbours import merge, nearest


def _brute(q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((q[:, None, :].astype(np.float64) - rows[None].astype(np.float64)) ** 2).sum(-1))
    order = np.lexsort((np.broadcast_to(np.arange(len(rows)), d.shape), d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, 1)


def test_nearest_over_blocks_and_tiles_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_neighbours, "TILE_ROWS", 37)
    monkeypatch.setattr(_neighbours, "QUERY_BLOCK", 11)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 12)).astype(np.float32)
    rows[17] = rows[16]  # an exact tie: broken by index
    q = np.concatenate([rng.normal(size=(25, 12)).astype(np.float32), rows[16:17]])
    found = nearest(q, [rows[:100], rows[100:250], rows[250:]], 7)
    order, dist = _brute(q, rows, 7)
    np.testing.assert_array_equal(found.indices, order)
    np.testing.assert_allclose(found.distances, dist, rtol=1e-12)
    assert list(found.indices[-1, :2]) == [16, 17]
    # A query that is one of the rows is not its own neighbour when excluded.
    own = nearest(rows[:5], [rows], 1, exclude=np.arange(5))
    assert (own.indices[:, 0] != np.arange(5)).all()


def test_merged_searches_equal_one_search_bitwise(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(500, 30)).astype(np.float32)
    q = rng.normal(size=(40, 30)).astype(np.float32)
    whole = nearest(q, [rows], 20)
    monkeypatch.setattr(_neighbours, "TILE_ROWS", 64)
    parts = merge(nearest(q, [rows[:321]], 20), nearest(q, [rows[321:]], 20, offset=321), 20)
    np.testing.assert_array_equal(parts.indices, whole.indices)
    np.testing.assert_array_equal(parts.distances, whole.distances)


def test_truncated_knn_shapley_is_exact_when_complete_and_bounded_otherwise() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 5)), rng.integers(0, 3, 400)
    tx, ty = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    exact = knn_shapley(x, y, tx, ty, k=5)
    full, bound = knn_shapley_truncated(nearest(tx, [x.astype(np.float32)], 400), y, ty, 5)
    assert bound == 0.0
    np.testing.assert_allclose(full, exact, atol=1e-12)
    for length in (5, 40, 150):
        approx, bound = knn_shapley_truncated(nearest(tx, [x.astype(np.float32)], length), y, ty, 5)
        assert bound == 1 / length
        assert np.abs(approx - exact).max() <= bound + 1e-12


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def _batch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    bx = np.concatenate([x[:3], x[3:4] + 0.01, x[500:540], x[540:580]])
    by = np.concatenate([y[:3], y[3:4], y[500:540], (y[540:580] + 4) % 10])
    return bx, by, ["a0", "a1", "a2", "copy-of-a3"] + [f"b{i}" for i in range(80)]


def test_large_dataset_path_flags_like_the_exact_one(
    digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = digits
    bx, by, bcids = _batch(x, y)
    cids = [f"a{i}" for i in range(400)]
    exact = quality_signals(x[:400], y[:400], cids, bx, by, bcids, x[1400:], y[1400:])
    monkeypatch.setattr(_signals, "EXACT_KNN_ELEMENTS", 0)
    monkeypatch.setattr(_signals, "KNN_CANDIDATES", 100)
    monkeypatch.setattr(_signals, "THRESHOLD_SAMPLE", 100)
    scaled = quality_signals([x[:150], x[150:400]], y[:400], cids, bx, by, bcids, x[1400:], y[1400:])
    assert scaled.knn_error_bound == 1 / 100 and exact.knn_error_bound == 0.0
    assert np.abs(np.subtract(scaled.knn_values, exact.knn_values)).max() <= scaled.knn_error_bound
    assert scaled.exact_duplicates == (0, 1, 2)
    assert [n[:2] for n in scaled.near_duplicates] == [(3, 3)]
    assert len(set(scaled.suspected_mislabels) & set(range(44, 84))) >= 30


def _truncated(
    digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The large-dataset path on digits: truncated KNN-Shapley over 64 candidates."""
    monkeypatch.setattr(_signals, "EXACT_KNN_ELEMENTS", 0)
    monkeypatch.setattr(_signals, "KNN_CANDIDATES", 64)
    x, y = digits
    return (x, y, *_batch(x, y))


def test_cache_grows_with_acceptances_and_changes_no_bit(
    digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    x, y, bx, by, bcids = _truncated(digits, monkeypatch)
    # Accepted encodings as memory maps on disk, one block per accepted proposal.
    blocks = []
    for i, (lo, hi) in enumerate([(0, 200), (200, 300), (300, 400)]):
        np.save(tmp_path / f"{i}.npy", x[lo:hi])
        blocks.append(np.load(tmp_path / f"{i}.npy", mmap_mode="r"))
    cache = SignalCache()
    for upto in (1, 2, 3):
        n = [200, 300, 400][upto - 1]
        cids = [f"a{i}" for i in range(n)]
        key = ("spec and validation", *(str(i) for i in range(upto)))
        cached = quality_signals(blocks[:upto], y[:n], cids, bx, by, bcids, x[1400:], y[1400:],
                                 cache=cache, cache_key=key)
        fresh = quality_signals(x[:n], y[:n], cids, bx, by, bcids, x[1400:], y[1400:])
        assert cached == fresh


def test_cache_on_disk_serves_a_new_process_the_same_bits(
    digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    x, y, bx, by, bcids = _truncated(digits, monkeypatch)
    cids = [f"a{i}" for i in range(400)]
    args = ([x[:300], x[300:400]], y[:400], cids, bx, by, bcids, x[1400:], y[1400:])
    key = ("scope", "first", "second")
    first = quality_signals(*args, cache=SignalCache(tmp_path / "signals"), cache_key=key)
    searches: list[int] = []
    real = _signals.nearest

    def counting(*a: object, **kw: object) -> object:
        searches.append(len(a[0]))  # type: ignore[arg-type]
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_signals, "nearest", counting)
    again = quality_signals(*args, cache=SignalCache(tmp_path / "signals"), cache_key=key)
    assert again == first
    # Only the batch's own searches ran: against the validation split and the accepted items.
    assert searches == [len(x[1400:]), len(bx)]
