"""How DataBright's data path grows with the data: a table of time and peak memory.

Each operation runs at each size in a fresh Python process (so its peak RSS is
its own, imports included) on data generated here, and the table shows wall
time, CPU time (user + system: on a shared machine the wall clock also counts
other people's work) and peak memory, so the growth order can be read off.

    python bench/scale.py                       # 1k and 10k of everything, 100k where it is quick
    python bench/scale.py --sizes 1000,10000,100000 --ops propose-rows
    python bench/scale.py --ops signals --sizes 50000       # a CIFAR-10-sized dataset
    python bench/scale.py --ops signals-imagenet --sizes 1281167

Operations:
  propose-rows     N table rows (8 numeric columns) -> blobs + manifest + Merkle root (one batch)
  propose-images   N 32x32 RGB PNG files -> blobs + manifest + Merkle root (one batch)
  encode-photos    N 375x500 JPEG photos decoded and resized to 32x32x3 float32
  signals          quality signals of a 100-item batch against N accepted 32x32x3 items
                   (features on disk, 500 validation items): cold, then warm (service cache)
  gain             the leave-one-out gain of a 100-item batch (the CNN spec, 5 seeds,
                   fine-tuning a checkpoint) against N accepted 32x32x3 items: cold, then
                   warm (without-batch baselines cached, as the service does)
  signals-imagenet signals against N accepted items of 256 features on disk
  evaluate-imagenet a whole evaluation (gain and signals) of a 100-item batch against N accepted
                   32x32x3 items on disk (ImageNet at 32x32: 15.7 GB at 1.28M) in 10 blocks, the
                   batch's neighbours through the approximate index: cold (index built), then
                   warm (a second batch); recall of the index against the exact search
  dataset-page     the index reads of a dataset page (items, holders, entries, label chart, growth,
                   open proposals) over N accepted items (index built in SQL, not timed)
  api-items        /api/v1/datasets/1/items?limit=100's index read: the first page, then a deep one
                   (warm column: the last page)
  proposal-show    `proposal show`'s item reads of an N-item proposal: a page, its label counts and
                   duplicates (counted in SQL)
  export           `dataset export` of N accepted 8x8 PNG items (64 distinct blobs) to Parquet row groups
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _timed(step: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def _propose_rows(n: int, scratch: Path) -> dict[str, Any]:
    import pandas as pd

    from databright.storage import LocalBlobStore, manifest_from_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"f{i}" for i in range(8)])
    frame["label"] = rng.integers(0, 10, n).astype(str)
    store = LocalBlobStore(scratch / "blobs")
    out: dict[str, Any] = {}

    def step() -> None:
        manifest, _ = manifest_from_table(store, frame)
        out["root"] = manifest.root.hex()

    out["wall"], out["cpu"] = _timed(step)
    return out


def _png(pixels: np.ndarray[Any, Any]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _propose_images(n: int, scratch: Path) -> dict[str, Any]:
    from databright.storage import LocalBlobStore, manifest_from_folder

    rng = np.random.default_rng(0)
    folder = scratch / "images"
    folder.mkdir()
    lines = ["file,label"]
    for i in range(n):  # not timed: the user's files already exist
        (folder / f"{i}.png").write_bytes(_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
        lines.append(f"{i}.png,{i % 10}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    store = LocalBlobStore(scratch / "blobs")
    wall, cpu = _timed(lambda: manifest_from_folder(store, folder, folder / "labels.csv"))
    return {"wall": wall, "cpu": cpu}


def _encode_photos(n: int, scratch: Path) -> dict[str, Any]:
    from PIL import Image

    from databright.ml import ModelSpec, encode_items

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    photos = []
    for i in range(min(n, 50)):  # 50 distinct photos, repeated: decoding cost is per item
        base = np.stack([xx * 255 / 500, yy * 255 / 375, (xx + yy) * 127 / 875], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    spec = ModelSpec(kind="cnn", input="image", image_shape=(3, 32, 32), hidden=(8, 16), classes=("a", "b"))
    blobs = [photos[i % len(photos)] for i in range(n)]

    def step() -> None:
        for start in range(0, n, 4096):
            encode_items(spec, blobs[start : start + 4096])

    wall, cpu = _timed(step)
    return {"wall": wall, "cpu": cpu}


def _features(n: int, width: int, scratch: Path) -> np.ndarray[Any, Any]:
    path = scratch / "accepted.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, width))
    rng = np.random.default_rng(1)
    for start in range(0, n, 65536):
        out[start : start + 65536] = rng.normal(size=(min(65536, n - start), width)).astype(np.float32)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def _signals(n: int, scratch: Path, width: int = 3072) -> dict[str, Any]:
    from databright.valuation import SignalCache, quality_signals

    accepted = _features(n, width, scratch)
    rng = np.random.default_rng(2)
    ay = rng.integers(0, 10, n)
    bx, by = rng.normal(size=(100, width)).astype(np.float32), rng.integers(0, 10, 100)
    vx, vy = rng.normal(size=(500, width)).astype(np.float32), rng.integers(0, 10, 500)
    cids, batch_cids = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(100)]
    cache = SignalCache()
    out: dict[str, Any] = {}

    def step() -> None:
        signals = quality_signals([accepted], ay, cids, bx, by, batch_cids, vx, vy, cache=cache,
                                  cache_key=("bench", "accepted"))
        out["bound"] = signals.knn_error_bound

    out["wall"], out["cpu"] = _timed(step)
    out["warm_wall"], out["warm_cpu"] = _timed(step)
    return out


def _gain(n: int, scratch: Path) -> dict[str, Any]:
    from databright.ml import ModelSpec, train
    from databright.valuation import loo_gain

    spec = ModelSpec(kind="cnn", input="image", image_shape=(3, 32, 32), hidden=(8, 16), lr=3e-3,
                     batch_size=64, pretrain_steps=300, finetune_steps=100, classes=tuple("0123456789"))
    accepted = np.asarray(_features(n, 3072, scratch)).reshape(n, 3, 32, 32)
    rng = np.random.default_rng(3)
    ay = rng.integers(0, 10, n)
    batch = (rng.normal(size=(100, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 100))
    validation = (rng.normal(size=(500, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 500))
    # As the evaluator does: fine-tune the dataset's checkpoint (trained here, not timed);
    # cold computes the without-batch baselines too, warm reuses them (service mode).
    checkpoint = train(spec, None, accepted, ay, steps=spec.pretrain_steps, seed=0)
    seeds = list(range(spec.seeds))
    cache: dict[int, float] = {}

    def step() -> None:
        _, computed = loo_gain(spec, checkpoint, (accepted, ay), batch, validation, seeds, baseline=cache.get)
        cache.update(computed)

    out: dict[str, Any] = {}
    out["wall"], out["cpu"] = _timed(step)
    out["warm_wall"], out["warm_cpu"] = _timed(step)
    return out


def _structured_blocks(n: int, scratch: Path, blocks: int = 10) -> list[Any]:
    """Synthetic 32x32x3 items near a 48-dimensional subspace (as photos are),
    written to disk as the evaluator's encoding cache holds them."""
    from databright.ml import DiskRows

    rng = np.random.default_rng(1)
    mixing = rng.standard_normal((48, 3072), dtype=np.float32) / 7
    out, bounds = [], np.linspace(0, n, blocks + 1).astype(int)
    for b in range(blocks):
        path = scratch / f"accepted-{b}.npy"
        rows = int(bounds[b + 1] - bounds[b])
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 3, 32, 32))
        for start in range(0, rows, 32768):
            m = min(32768, rows - start)
            x = rng.standard_normal((m, 48), dtype=np.float32) @ mixing
            x += rng.random((m, 3072), dtype=np.float32) - 0.5
            mm[start : start + m] = x.reshape(m, 3, 32, 32)
        mm.flush()
        del mm
        out.append(DiskRows(path))
    return out


def _evaluate_imagenet(n: int, scratch: Path) -> dict[str, Any]:
    from databright.ml import ModelSpec, Stack, train
    from databright.valuation import SignalCache, loo_gain, quality_signals
    from databright.valuation._neighbours import nearest

    blocks = _structured_blocks(n, scratch)
    rng = np.random.default_rng(3)
    ay = rng.integers(0, 10, n)
    stack = Stack(blocks)
    spec = ModelSpec(kind="cnn", input="image", image_shape=(3, 32, 32), hidden=(8, 16), lr=3e-3,
                     batch_size=64, pretrain_steps=300, finetune_steps=100, classes=tuple("0123456789"))
    checkpoint = train(spec, None, stack, ay, steps=spec.pretrain_steps, seed=0)  # not timed

    def batch(seed: int) -> tuple[Any, Any]:
        r = np.random.default_rng(seed)
        copies = r.choice(n, 50, replace=False)  # half near duplicates of accepted items, half new
        near = stack.take(copies) + r.normal(0, 0.01, (50, 3, 32, 32)).astype(np.float32)
        new = (r.standard_normal((50, 48), dtype=np.float32) @ (r.standard_normal((48, 3072), dtype=np.float32) / 7))
        return np.concatenate([near, new.reshape(50, 3, 32, 32)]), copies

    validation = (np.asarray(stack.take(rng.choice(n, 500, replace=False))), rng.integers(0, 10, 500))
    cache, baselines = SignalCache(scratch / "signals"), {}
    key = ("bench", *(f"block-{b}" for b in range(len(blocks))))
    out: dict[str, Any] = {}

    def evaluate(bx: Any) -> None:
        by = rng.integers(0, 10, len(bx))
        _, computed = loo_gain(spec, checkpoint, (stack, ay), (bx, by), validation, range(spec.seeds),
                               baseline=baselines.get)
        baselines.update(computed)
        signals = quality_signals(blocks, ay, [f"a{i}" for i in range(n)], bx, by,
                                  [f"b{i}" for i in range(len(bx))], *validation, cache=cache, cache_key=key)
        out["bound"], out["near"] = signals.knn_error_bound, signals.near_duplicates

    first, copies = batch(10)
    out["wall"], out["cpu"] = _timed(lambda: evaluate(first))
    second, copies = batch(11)
    out["warm_wall"], out["warm_cpu"] = _timed(lambda: evaluate(second))
    found_near = {(i, j) for i, j, _ in out.pop("near")}
    exact = nearest(second, blocks, 5)
    approx = cache.index.nearest(key, blocks, second, 5)
    out["recall_at_1"] = float(np.mean(approx.indices[:, 0] == exact.indices[:, 0]))
    out["recall_at_5"] = float(np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx.indices, exact.indices)]))
    out["near_found"] = sum((i, int(c)) in found_near for i, c in enumerate(copies))
    return out


def _index(n: int, scratch: Path, per_proposal: int = 1000) -> Any:
    from tests.unit.index.synthetic import build

    return build(scratch / "index.sqlite", n, per_proposal=per_proposal)


def _dataset_page(n: int, scratch: Path) -> dict[str, Any]:
    index = _index(n, scratch)

    def step() -> None:
        index.dataset(1)
        index.items_page(1, limit=48)
        index.holders_page(1, limit=20)
        index.entries_page(1, limit=20)
        index.label_counts(1)
        index.growth(1)
        index.proposals_page(1, "open", limit=20)

    step()  # a running server has its page cache warm
    wall, cpu = _timed(step)
    return {"wall": wall, "cpu": cpu}


def _api_items(n: int, scratch: Path) -> dict[str, Any]:
    from databright.index._pages import encode_cursor

    index = _index(n, scratch)
    deep = encode_cursor("items", (max(1, n // 1000), 899))  # the last proposal: OFFSET would read everything
    index.items_page(1, limit=100)
    out: dict[str, Any] = {}
    out["wall"], out["cpu"] = _timed(lambda: index.items_page(1, limit=100))
    out["warm_wall"], out["warm_cpu"] = _timed(lambda: index.items_page(1, cursor=deep, limit=100))
    return out


def _proposal_show(n: int, scratch: Path) -> dict[str, Any]:
    index = _index(n, scratch, per_proposal=n)

    def step() -> None:
        index.items_page(1, accepted=None, proposal_id=1, limit=20)
        index.proposal_labels(1)
        index.duplicate_items(1)

    wall, cpu = _timed(step)
    return {"wall": wall, "cpu": cpu}


def _export(n: int, scratch: Path) -> dict[str, Any]:
    import sqlite3

    import pyarrow.parquet  # noqa: F401 - imported before the clock starts, as for every other row

    from databright.demo import write_png
    from databright.export import export_dataset
    from databright.storage import LocalBlobStore
    from databright.workspace import Workspace

    index = _index(n, scratch)
    store = LocalBlobStore(scratch / "blobs")
    rng = np.random.default_rng(4)
    cids = [store.put(write_png(rng.integers(0, 256, (8, 8), dtype=np.uint8))) for _ in range(64)]
    with sqlite3.connect(scratch / "index.sqlite") as db:
        db.executemany("UPDATE items SET cid = ?, metadata_json = '{\"filename\": \"x.png\"}' WHERE id % 64 = ?",
                       [(cid, k) for k, cid in enumerate(cids)])
    ws = Workspace(scratch / "home", store_url=str(scratch / "blobs"))
    ws.__dict__["index"] = index  # the synthetic index: no chain is needed to read it
    wall, cpu = _timed(lambda: export_dataset(ws, 1, scratch / "out"))
    return {"wall": wall, "cpu": cpu}


OPS: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "dataset-page": _dataset_page,
    "api-items": _api_items,
    "proposal-show": _proposal_show,
    "export": _export,
    "propose-rows": _propose_rows,
    "propose-images": _propose_images,
    "encode-photos": _encode_photos,
    "signals": _signals,
    "gain": _gain,
    "signals-imagenet": lambda n, scratch: _signals(n, scratch, width=256),
    "evaluate-imagenet": _evaluate_imagenet,
}


def _one(op: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="databright-scale-") as scratch:
        result = OPS[op](n, Path(scratch))
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="propose-rows,propose-images,encode-photos,signals")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--one", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one[0], int(args.one[1]))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| operation | items | wall (s) | CPU (s) | peak RSS (MiB) | warm wall / CPU (s) | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for op in args.ops.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            done = subprocess.run([sys.executable, __file__, "--one", op, str(n)], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"| {op} | {n:,} | failed: {done.stderr.strip().splitlines()[-1]} | | | | |")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            warm = f"{r['warm_wall']:.4f} / {r['warm_cpu']:.4f}" if "warm_wall" in r else ""
            notes = f"KNN-Shapley error bound {r['bound']:.2g}" if r.get("bound") else ""
            if "recall_at_1" in r:
                notes += (f"; index recall@1 {r['recall_at_1']:.2f}, @5 {r['recall_at_5']:.2f}; "
                          f"near duplicates found {r['near_found']}/50")
            print(f"| {op} | {n:,} | {r['wall']:.4f} | {r['cpu']:.4f} | {r['peak_mib']:.0f} | {warm} | {notes} |",
                  flush=True)


if __name__ == "__main__":
    main()
