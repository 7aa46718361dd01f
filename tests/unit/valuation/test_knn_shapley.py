"""Exact KNN-Shapley values: against the paper's recursion, brute force and pyDVL."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from databright.valuation import KNNShapley, knn_shapley
from databright.valuation._knn_shapley import _Workspace

Data = tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]


# --- plain reference implementations, written from the paper -----------------


def _ranked(x_train: NDArray[Any], x: NDArray[Any]) -> list[int]:
    """Training indices by increasing distance to x, ties by index."""
    dist = [float(np.sum((row - x) ** 2)) for row in x_train]
    return sorted(range(len(x_train)), key=lambda i: (dist[i], i))


def paper_recursion(data: Data, k: int) -> NDArray[np.float64]:
    """Theorem 1 of Jia et al. (2019), one test point at a time, in loops.

    The base case is m_N / max(K, N): the paper's m_N / N when K <= N, and the
    exact value m_N / K of the (then additive) utility when K > N.
    """
    x_train, y_train, x_test, y_test = data
    n = len(x_train)
    total = np.zeros(n)
    for x, y in zip(x_test, y_test, strict=True):
        alpha = _ranked(x_train, x)
        m = [float(y_train[a] == y) for a in alpha]
        s = np.zeros(n)
        s[alpha[-1]] = m[-1] / max(k, n)
        for i in range(n - 1, 0, -1):  # i: 1-based rank of alpha[i - 1]
            s[alpha[i - 1]] = s[alpha[i]] + (m[i - 1] - m[i]) / k * min(k, i) / i
        total += s
    return total / len(x_test)


def utility(data: Data, k: int, subset: Sequence[int]) -> float:
    """Mean fraction of the k nearest members of `subset` with the test label."""
    x_train, y_train, x_test, y_test = data
    chosen = set(subset)
    score = 0.0
    for x, y in zip(x_test, y_test, strict=True):
        nearest = [i for i in _ranked(x_train, x) if i in chosen][:k]
        score += sum(y_train[i] == y for i in nearest) / k
    return score / len(x_test)


def brute_force_shapley(data: Data, k: int) -> NDArray[np.float64]:
    n = len(data[0])
    u = {
        s: utility(data, k, s)
        for size in range(n + 1)
        for s in itertools.combinations(range(n), size)
    }
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = 1 / (n * math.comb(n - 1, size))
            for s in itertools.combinations(others, size):
                values[i] += weight * (u[tuple(sorted((*s, i)))] - u[s])
    return values


# --- data ----------------------------------------------------------------------


def gaussian(seed: int, n: int, m: int, d: int = 5, classes: int = 3) -> Data:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)), rng.integers(0, classes, n),
            rng.standard_normal((m, d)), rng.integers(0, classes, m))


def lattice(seed: int, n: int, m: int, d: int = 2, side: int = 3) -> Data:
    """Small integer coordinates: distances are exact and ties are everywhere,
    including duplicated training points with different labels."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, side, (n, d)).astype(float), rng.integers(0, 2, n),
            rng.integers(0, side, (m, d)).astype(float), rng.integers(0, 2, m))


CASES = [
    pytest.param(gaussian(0, 40, 7), 5, id="gaussian"),
    pytest.param(gaussian(1, 60, 3, classes=2), 1, id="gaussian-k1"),
    pytest.param(gaussian(2, 25, 4), 25, id="k=N"),
    pytest.param(gaussian(3, 12, 5), 30, id="k>N"),
    pytest.param(gaussian(4, 1, 3), 3, id="one-train-point"),
    pytest.param(lattice(5, 50, 9), 3, id="ties"),
    pytest.param(lattice(6, 30, 6, d=1, side=2), 4, id="many-ties"),
    pytest.param(lattice(7, 8, 5), 20, id="ties-k>N"),
]


# --- correctness ---------------------------------------------------------------


@pytest.mark.parametrize(("data", "k"), CASES)
def test_matches_the_papers_recursion(data: Data, k: int) -> None:
    np.testing.assert_allclose(knn_shapley(*data, k), paper_recursion(data, k),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 9])
@pytest.mark.parametrize("data", [gaussian(8, 6, 3), lattice(9, 7, 3)],
                         ids=["gaussian", "ties"])
def test_is_the_exact_shapley_value(data: Data, k: int) -> None:
    """Against the definition, over all 2^N subsets (k = 9 > N included)."""
    np.testing.assert_allclose(knn_shapley(*data, k), brute_force_shapley(data, k),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("data", "k"),
    [(gaussian(10, 300, 20), 5), (gaussian(11, 50, 1, classes=2), 1),
     (gaussian(12, 80, 15, d=3, classes=4), 80), (gaussian(13, 500, 30, d=16), 10)],
)
def test_matches_pydvl(data: Data, k: int) -> None:
    with warnings.catch_warnings():
        # pyDVL 0.10 imports raise FutureWarnings from its pyDeprecate dependency.
        warnings.simplefilter("ignore")
        # a test-only dependency that scripts/dev installs: missing means a broken set-up, not a skip
        import pydvl.valuation.dataset as pydvl_dataset
        import pydvl.valuation.methods.knn_shapley as pydvl_knn
    from sklearn.neighbors import KNeighborsClassifier

    x_train, y_train, x_test, y_test = data
    valuation = pydvl_knn.KNNShapleyValuation(
        KNeighborsClassifier(n_neighbors=k),
        pydvl_dataset.Dataset(x_test, y_test), progress=False,
    ).fit(pydvl_dataset.Dataset(x_train, y_train))
    theirs = np.empty(len(x_train))
    theirs[valuation.result.indices] = valuation.result.values
    np.testing.assert_allclose(knn_shapley(*data, k), theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("data", "k"), CASES)
def test_efficiency(data: Data, k: int) -> None:
    """Values sum to u(D) - u(empty) = u(D): the mean fraction of test-label
    matches among the min(k, N) nearest training points."""
    x_train, y_train, x_test, y_test = data
    full = utility(data, k, range(len(x_train)))
    assert knn_shapley(*data, k).sum() == pytest.approx(full, abs=1e-12)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_efficiency_against_sklearn(k: int) -> None:
    """With k <= N, u(D) is the mean predict_proba of the true test label."""
    from sklearn.neighbors import KNeighborsClassifier

    x_train, y_train, x_test, y_test = data = gaussian(14, 200, 50, classes=4)
    proba = KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train).predict_proba(x_test)
    expected = proba[np.arange(len(y_test)), y_test].mean()
    assert knn_shapley(*data, k).sum() == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), m=st.integers(1, 8),
    k=st.integers(1, 35), tile_size=st.integers(1, 9), n_jobs=st.integers(1, 3),
)
def test_efficiency_and_tiling_hold_for_any_data(
    seed: int, n: int, m: int, k: int, tile_size: int, n_jobs: int,
) -> None:
    data = lattice(seed, n, m, side=4)
    values = knn_shapley(*data, k)
    assert values.sum() == pytest.approx(utility(data, k, range(n)), abs=1e-12)
    tiled = knn_shapley(*data, k, tile_size=tile_size, n_jobs=n_jobs)
    np.testing.assert_array_equal(tiled, values)


def test_labels_of_any_type() -> None:
    x_train, y_train, x_test, y_test = gaussian(15, 30, 6)
    names = np.array(["cat", "dog", "eel"])
    # "fox" appears only in the test set: those test points value nothing.
    y_test_named = np.append(names[y_test], "fox")
    x_test_more = np.vstack([x_test, x_test[:1]])
    expected = paper_recursion((x_train, names[y_train], x_test_more, y_test_named), 4)
    values = knn_shapley(x_train, names[y_train], x_test_more, y_test_named, 4)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)


# --- implementation properties ---------------------------------------------------


@pytest.mark.parametrize("tile_size", [1, 2, 7, 37, 1000])
@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_tiling_and_threads_do_not_change_a_bit(tile_size: int, n_jobs: int) -> None:
    data = gaussian(16, 300, 37, d=8)
    expected = knn_shapley(*data, 5)
    np.testing.assert_array_equal(
        knn_shapley(*data, 5, tile_size=tile_size, n_jobs=n_jobs), expected)


def test_float32_is_close_to_float64() -> None:
    data = gaussian(17, 1000, 20, d=16)
    np.testing.assert_allclose(knn_shapley(*data, 5, dtype=np.float32),
                               knn_shapley(*data, 5), rtol=0, atol=1e-9)
    # Small integers are exact in float32 too, so the order, and the values, agree.
    ties = lattice(18, 200, 20)
    np.testing.assert_array_equal(knn_shapley(*ties, 5, dtype=np.float32),
                                  knn_shapley(*ties, 5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 1000, 70_000])
def test_order_is_a_stable_argsort(dtype: type[np.floating], n: int) -> None:
    """Packed integer keys order rows exactly like ``argsort(kind="stable")``,
    also when distances differ only in the mantissa bits the index displaces."""
    rng = np.random.default_rng(n)
    near = 1.0 + rng.integers(0, 2**20, (2, n)) * np.finfo(dtype).eps
    rows = [
        rng.random((2, n)), rng.integers(0, 4, (2, n)), near,
        np.repeat(rng.random((2, (n + 1) // 2)), 2, axis=1)[:, :n],
        np.zeros((2, n)),
    ]
    for row in rows:
        dist = np.ascontiguousarray(row, dtype=dtype)
        expected = np.argsort(dist, axis=1, kind="stable")
        order = _Workspace(2, n, dist.dtype, np.dtype(np.uint8)).order(dist.copy())
        np.testing.assert_array_equal(order, expected)


def test_class_wraps_the_function() -> None:
    x_train, y_train, x_test, y_test = data = gaussian(19, 50, 10)
    valuation = KNNShapley(x_test, y_test, k=3, tile_size=4)
    with pytest.raises(RuntimeError, match="fit"):
        _ = valuation.result
    assert valuation.fit(x_train, y_train) is valuation
    np.testing.assert_array_equal(valuation.result, knn_shapley(*data, 3))


# --- input validation ----------------------------------------------------------

X, Y = np.zeros((4, 2)), np.array([0, 1, 0, 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x_train": np.zeros(4)}, "x_train must be 2-D"),
        ({"x_test": np.zeros((4, 2, 1))}, "x_test must be 2-D"),
        ({"x_train": np.zeros((0, 2)), "y_train": np.array([])}, "x_train is empty"),
        ({"x_test": np.zeros((4, 0))}, "x_test is empty"),
        ({"x_test": np.zeros((4, 3))}, "x_train has 2 features but x_test has 3"),
        ({"y_train": np.array([0, 1, 0])}, "x_train has 4 samples but y_train has 3"),
        ({"y_test": np.zeros((4, 1))}, "y_test must be 1-D"),
        ({"x_train": np.full((4, 2), np.nan)}, "NaN or infinity"),
        ({"x_test": np.full((4, 2), 1e200)}, "overflow"),
        ({"x_train": np.full((4, 2), "a")}, "real numbers"),
        ({"x_test": np.ones((4, 2), complex)}, "real numbers"),
        ({"k": 0}, "k must be at least 1"),
        ({"k": 2.0}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"tile_size": 0}, "tile_size must be at least 1"),
        ({"n_jobs": -1}, "n_jobs must be at least 1"),
        ({"dtype": np.int64}, "dtype must be float32 or float64"),
        ({"y_test": np.array(["a", "b", "a", "b"], dtype=object),
          "y_train": np.array([0, 1, 0, 1], dtype=object)}, "cannot be compared"),
    ],
)
def test_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"x_train": X, "y_train": Y, "x_test": X, "y_test": Y}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        knn_shapley(**args)


def test_public_names() -> None:
    import databright.valuation as valuation

    assert valuation.__all__ == sorted(valuation.__all__)
    assert {"KNNShapley", "knn_shapley"} <= set(valuation.__all__)
