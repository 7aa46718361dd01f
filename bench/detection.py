"""Detection on the digits demo over many seeds, with the evaluator's own code.

For each seed the demo's scenario is replayed without a chain: digits as 8x8
PNG files, 10% seeded, 600 held out for validation, then eight batches — six
clean (100 items), one with flipped labels (100 items), one repeating 50
accepted items — each valued by ``evaluator.compute_results`` (the function
behind every posted evaluation) against the accepted data and the best
checkpoint, accepted by the demo's voting policy and folded into the
checkpoint as the evaluator does. Printed: the share of runs in which the
flipped batch is valued below every clean batch of the same size (goal >= 95%),
how often the flipped batch is rejected and flagged, how often clean batches'
rewards fall with dataset size, and the evaluation latency per proposal.

Run: ``.venv/bin/python bench/detection.py [--seeds 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sklearn.datasets import load_digits  # noqa: E402

from databright.demo import BATCH_SIZE, GAIN_FLOOR, MISLABEL_LIMIT, SEED_FRACTION, VALIDATION_ITEMS, write_png  # noqa: E402
from databright.evaluator import compute_results  # noqa: E402
from databright.ml import accuracy, default_spec, encode_items, encode_labels, load_checkpoint, save_checkpoint, train  # noqa: E402
from databright.storage import LocalBlobStore, Manifest, ManifestItem  # noqa: E402
from databright.valuation import RewardPolicy  # noqa: E402


def _manifest(store: LocalBlobStore, images: np.ndarray, labels: list[str]) -> str:
    items = [ManifestItem(store.put(write_png(np.clip(im * 16, 0, 255).astype(np.uint8))), lab)
             for im, lab in zip(images, labels, strict=True)]
    return str(Manifest(items).save(store))


def replay(seed: int, store: LocalBlobStore) -> dict[str, object]:
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    images, targets = digits.images[order], [str(t) for t in digits.target[order]]
    seed_n = int(len(order) * SEED_FRACTION)
    held = slice(len(order) - VALIDATION_ITEMS, len(order))
    accepted = [_manifest(store, images[:seed_n], targets[:seed_n])]
    validation = _manifest(store, images[held], targets[held])
    sample = [store.get(i.cid) for m in (accepted[0], validation) for i in Manifest.from_bytes(store.get(m))]
    sample_labels = targets[:seed_n] + targets[held]
    spec = default_spec("files", sample, sample_labels).model_copy(update={"classes": tuple(map(str, range(10)))})

    def arrays(cids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        items = [i for m in cids for i in Manifest.from_bytes(store.get(m))]
        return encode_items(spec, [store.get(i.cid) for i in items]), encode_labels(spec, [i.label for i in items])

    vx, vy = arrays([validation])
    state = train(spec, None, *arrays(accepted), steps=spec.pretrain_steps, seed=0)
    best = accuracy(spec, state, vx, vy)
    checkpoint = str(store.put(save_checkpoint(state)))
    policy = RewardPolicy(half_life_items=200)
    outcomes, latencies, baselines = [], [], {}
    start = seed_n
    for k in range(8):
        kind = {2: "flipped", 5: "repeats"}.get(k, "clean")
        if kind == "repeats":
            take = rng.choice(seed_n, size=BATCH_SIZE // 2, replace=False)
            batch = _manifest(store, images[take], [targets[i] for i in take])
        else:
            labels = targets[start : start + BATCH_SIZE]
            if kind == "flipped":
                labels = [str((int(t) + 1 + rng.integers(9)) % 10) for t in labels]
            batch = _manifest(store, images[start : start + BATCH_SIZE], labels)
            start += BATCH_SIZE
        inputs = {"spec": spec.model_dump(mode="json"), "policy": policy.model_dump(mode="json"), "cap": 5000,
                  "base_reward": 10, "accepted": list(accepted), "proposal": batch, "validation": validation,
                  "checkpoint": checkpoint, "seeds": list(range(spec.seeds))}
        tick = time.perf_counter()
        results = compute_results(store, inputs, baselines=baselines)
        latencies.append(time.perf_counter() - tick)
        signals = results["signals"]
        items = len(signals["knn_values"])
        ok = (results["gain"]["mean"] >= GAIN_FLOOR and not signals["exact_duplicates"]
              and len(signals["suspected_mislabels"]) <= MISLABEL_LIMIT * items)
        outcomes.append({"kind": kind, "gain": results["gain"]["mean"], "shares": results["shares"], "accepted": ok,
                         "mislabels": len(signals["suspected_mislabels"]), "items": items})
        if ok:
            accepted.append(batch)
            tuned = train(spec, load_checkpoint(store.get(checkpoint)), *arrays(accepted),
                          steps=spec.finetune_steps, seed=0)
            score = accuracy(spec, tuned, vx, vy)
            if score >= best:
                best, checkpoint = score, str(store.put(save_checkpoint(tuned)))
    return {"outcomes": outcomes, "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    below, rejected, flagged, falling, pairs, latencies = 0, 0, 0, 0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalBlobStore(Path(tmp))
        for seed in range(args.seeds):
            run = replay(seed, store)
            outcomes = run["outcomes"]  # type: ignore[assignment]
            latencies += run["latencies"]  # type: ignore[operator]
            flipped = next(o for o in outcomes if o["kind"] == "flipped")
            clean = [o for o in outcomes if o["kind"] == "clean"]
            below += all(flipped["gain"] < o["gain"] for o in clean)
            rejected += not flipped["accepted"]
            flagged += flipped["mislabels"] > MISLABEL_LIMIT * flipped["items"]
            rewarded = [o["shares"] for o in clean if o["accepted"]]
            falling += sum(a > b for a, b in zip(rewarded, rewarded[1:]))
            pairs += max(len(rewarded) - 1, 0)
            print(f"seed {seed}: flipped gain {flipped['gain'] * 100:+.2f}, clean gains "
                  + " ".join(f"{o['gain'] * 100:+.2f}" for o in clean), file=sys.stderr, flush=True)
    n = args.seeds
    print(f"\nDetection on the digits demo, {n} seeds (2-core machine)\n")
    print("| measure | result | goal |")
    print("|---|---:|---:|")
    print(f"| flipped-label batch valued below every clean batch of the same size | {below / n:.0%} ({below}/{n}) "
          "| >= 95% |")
    print(f"| flipped-label batch rejected by the demo's voting policy | {rejected / n:.0%} | |")
    print(f"| flipped-label batch flagged (> 20% suspected mislabels) | {flagged / n:.0%} | |")
    print(f"| consecutive accepted clean batches whose reward falls | {falling / max(pairs, 1):.0%} ({falling}/{pairs}) "
          "| |")
    print(f"| evaluation latency per proposal, median (p90) | {statistics.median(latencies):.2f} s "
          f"({np.percentile(latencies, 90):.2f} s) | |")


if __name__ == "__main__":
    main()
