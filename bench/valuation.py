"""KNN-Shapley: ``databright.valuation.knn_shapley`` against pyDVL, same data, same run.

Random Gaussian features (d = 64) and three classes.  Part one values the same
training set with ours and with pyDVL 0.10's ``KNNShapleyValuation`` (the anchor),
checks that they agree, and prints the ratio of the medians.  Part two times ours
alone at N = 100,000 training points x M = 1,000 test points.  Ours is timed as a
median over ``--reps`` runs, pyDVL over ``--pydvl-reps`` (it is slow).

Run: ``.venv/bin/python bench/valuation.py`` (pyDVL installed for part one).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from databright.valuation import knn_shapley  # noqa: E402
from databright.valuation._knn_shapley import _n_cpus  # noqa: E402

D, K, CLASSES = 64, 5, 3


def make_data(n: int, m: int, seed: int = 0) -> tuple[NDArray[Any], ...]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, D)), rng.integers(0, CLASSES, n),
            rng.standard_normal((m, D)), rng.integers(0, CLASSES, m))


def timed(run: Callable[[], NDArray[np.float64]], reps: int) -> tuple[float, NDArray[np.float64]]:
    """Median wall time of `reps` runs, after one untimed warm-up, and the result."""
    result = run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def pydvl_values(data: tuple[NDArray[Any], ...]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyDeprecate FutureWarnings on import
        from pydvl.valuation.dataset import Dataset
        from pydvl.valuation.methods.knn_shapley import KNNShapleyValuation
    from sklearn.neighbors import KNeighborsClassifier

    x_train, y_train, x_test, y_test = data
    result = KNNShapleyValuation(
        KNeighborsClassifier(n_neighbors=K), Dataset(x_test, y_test), progress=False
    ).fit(Dataset(x_train, y_train)).result
    values = np.empty(len(x_train))
    values[result.indices] = result.values
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="training points vs pyDVL")
    parser.add_argument("--m", type=int, default=100, help="test points vs pyDVL")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of ours")
    parser.add_argument("--pydvl-reps", type=int, default=1, help="timed runs of pyDVL")
    parser.add_argument("--big-n", type=int, default=100_000)
    parser.add_argument("--big-m", type=int, default=1_000)
    parser.add_argument("--big-reps", type=int, default=3)
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{_n_cpus()} CPUs for this process")
    for pool in threadpool_info():
        print(f"threadpool: {pool['internal_api']} {pool.get('version')} "
              f"({pool.get('architecture')}), {pool['num_threads']} threads, "
              f"{pool['filepath']}")
    print("load average before the run: {:.1f} {:.1f} {:.1f} (other processes "
          "competing for the CPUs inflate every timing)".format(*os.getloadavg()))
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set; "
              "it can slow the distance matrix product")

    rows = []
    data = make_data(args.n, args.m)
    ours_s, ours = timed(lambda: knn_shapley(*data, K), args.reps)
    try:
        theirs_s, theirs = timed(lambda: pydvl_values(data), args.pydvl_reps)
    except ImportError as exc:
        print(f"pyDVL not importable ({exc}): skipping the comparison")
    else:
        gap = float(np.abs(ours - theirs).max())
        print(f"\nmax |ours - pyDVL| = {gap:.1e}")
        shape = f"N={args.n:,} M={args.m:,} d={D} k={K}"
        rows.append((f"pyDVL 0.10 KNNShapleyValuation ({args.pydvl_reps} rep)", shape,
                     theirs_s, "1x"))
        rows.append((f"databright knn_shapley (median of {args.reps})", shape, ours_s,
                     f"{theirs_s / ours_s:.0f}x faster"))

    big = make_data(args.big_n, args.big_m, seed=1)
    big_s, _ = timed(lambda: knn_shapley(*big, K), args.big_reps)
    rows.append((f"databright knn_shapley (median of {args.big_reps})",
                 f"N={args.big_n:,} M={args.big_m:,} d={D} k={K}", big_s, "goal <= 10 s"))
    big32_s, _ = timed(lambda: knn_shapley(*big, K, dtype=np.float32), args.big_reps)
    rows.append((f"databright knn_shapley float32 (median of {args.big_reps})",
                 f"N={args.big_n:,} M={args.big_m:,} d={D} k={K}", big32_s, ""))

    print("\n| implementation | data | time (s) | vs pyDVL / goal |")
    print("|---|---|---:|---|")
    for name, shape, seconds, note in rows:
        print(f"| {name} | {shape} | {seconds:.3f} | {note} |")


if __name__ == "__main__":
    main()
