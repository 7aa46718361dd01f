"""Text datasets at size: import, encode and duplicate signals, with time and peak memory.

Each operation runs in a fresh Python process on synthetic sentences made here
(a few hundred words drawn at random, so near duplicates are rare but real):

    python bench/text.py                          # 10k of each
    python bench/text.py --sizes 10000,100000 --ops import-opennmt

Operations:
  import-opennmt   N sentence pairs in src/tgt files -> blobs + manifest (one durable batch)
  encode-text      N texts -> hashed n-gram features (2,048 float32, the default text spec)
  pair-signals     exact and near duplicates (MinHash) of a 100-pair batch against N accepted pairs
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = [f"w{i}" for i in range(400)]


def _sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 12)) for _ in range(n)]


def _files(root: Path, n: int, seed: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "src-train.txt").write_text("\n".join(_sentences(n, seed)) + "\n")
    (root / "tgt-train.txt").write_text("\n".join(_sentences(n, seed + 1)) + "\n")
    return root


def run_op(op: str, n: int) -> dict[str, float]:
    from databright.storage import LocalBlobStore, manifest_from_source

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if op == "import-opennmt":
            _files(root, n, 0)
            start = time.perf_counter()
            manifest_from_source(LocalBlobStore(root / "blobs"), root, "opennmt")
        elif op == "encode-text":
            from databright.ml._text import encode_texts

            blobs = [s.encode() for s in _sentences(n, 0)]
            start = time.perf_counter()
            encode_texts(blobs, 2048)
        elif op == "pair-signals":
            from databright.valuation import text_pair_results

            store = LocalBlobStore(root / "blobs")
            accepted = manifest_from_source(store, _files(root / "a", n, 0), "opennmt")[1]
            batch = manifest_from_source(store, _files(root / "b", 100, 7), "opennmt")[1]
            inputs = {"method": "text-pairs", "policy": {}, "cap": 10**6, "base_reward": 10,
                      "accepted": [str(accepted)], "proposal": str(batch)}
            start = time.perf_counter()
            text_pair_results(store, inputs)
        else:
            raise SystemExit(f"unknown op {op}")
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--ops", default="import-opennmt,encode-text,pair-signals")
    parser.add_argument("--child", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_op(args.child[0], int(args.child[1]))))
        return
    print("| operation | items | wall (s) | CPU of the process (s) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for op in args.ops.split(","):
        for n in map(int, args.sizes.split(",")):
            done = subprocess.run([sys.executable, __file__, "--child", op, str(n)], capture_output=True, text=True,
                                  check=True)
            r = json.loads(done.stdout)
            print(f"| {op} | {n:,} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
