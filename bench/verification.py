"""TMR, spot-checked replay and optimistic verification on the same jobs against byzantine workers.

Each job trains a small MLP on scikit-learn's digits for ``--steps`` steps from
its own seed. One worker of each job cheats: it fakes a fraction f of its
segments of ``--interval`` steps (``skip``, ``perturb`` and ``replay`` in turn, see
tests/unit/compute/_byzantine.py) and carries on honestly from the fake. Per
method the table gives the extra compute as a fraction of the job and the share
of jobs whose cheat was caught:

* TMR: two more workers train the job and the three digests are compared
  (the honest replicas are bit-identical, so one honest run stands for both;
  its time is counted twice);
* spot-checked replay: the coordinator re-runs the whole task of a random
  ``--spot`` share of jobs and compares digests;
* optimistic: the worker commits a Merkle root of its snapshots every
  ``--interval`` steps (``n`` segments), the coordinator re-executes ``s``
  segments drawn after the commitment (``s`` from ``samples_for(n, 0.10,
  0.99)``) and bisects on a mismatch.

Extra compute is counted in training steps (what scales with the model) and,
for the optimistic rows, also in measured wall time, which adds the cost of
snapshotting and hashing every segment on these tiny models: a longer
``--interval`` divides it by the segment length.

Run: ``PYTHONPATH=src .venv/bin/python bench/verification.py [--jobs 30 --steps 300 --interval 1]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from databright.compute._commitments import address_of, boundaries, commit_training  # noqa: E402
from databright.compute._requests import RequestDomain  # noqa: E402
from databright.compute._verification import detection_probability, sample_segments, samples_for, verify_run  # noqa: E402
from databright.ml import save_checkpoint, train  # noqa: E402
from tests.unit.compute._byzantine import MODES, cheating_run, weights_of  # noqa: E402
from tests.unit.ml._digits import digits_table  # noqa: E402

DOMAIN = RequestDomain(1337, "0x" + "c0" * 20)
KEY = hashlib.sha256(b"bench worker").digest()
TASK = hashlib.sha256(b"bench task").digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--spot", type=float, default=0.10, help="share of tasks spot-checked by replay")
    parser.add_argument("--interval", type=int, default=1, help="steps per committed segment")
    args = parser.parse_args()
    digits = digits_table()
    spec = digits.spec.model_copy(update={"batch_size": 32, "optimizer": "sgd", "lr": 0.05, "hidden": (16,)})
    x, y = digits.x[:400], digits.y[:400]
    worker = address_of(KEY)
    n, k = args.steps, args.interval
    segments = len(boundaries(n, k)) - 1
    samples = samples_for(segments, 0.10, 0.99)
    print(f"{args.jobs} jobs of {n} steps, {k}-step segments, optimistic samples s = {samples} of n = {segments}")
    rows = []
    base_time = commit_time = 0.0
    honest_digests = []
    for job in range(args.jobs):
        t = time.perf_counter()
        honest_digests.append(hashlib.sha256(save_checkpoint(train(spec, None, x, y, steps=n, seed=job))).digest())
        base_time += time.perf_counter() - t
    for fraction in (0.01, 0.10, 1.0):
        faked_count = max(1, round(fraction * segments))
        rng = np.random.default_rng(int(fraction * 1000))
        spot_rng = np.random.default_rng(7)
        caught = {"tmr": 0, "spot": 0, "optimistic": 0}
        spot_steps = replayed = 0
        for job in range(args.jobs):
            faked = {int(i) for i in rng.choice(segments, size=faked_count, replace=False)}
            run = cheating_run(spec, None, x, y, steps=n, seed=job, interval=k, task=TASK, domain=DOMAIN,
                               key=KEY, faked=faked, mode=MODES[job % 3])
            digest = run.commitment.result
            caught["tmr"] += digest != honest_digests[job]
            if spot_rng.random() < args.spot:
                spot_steps += n
                caught["spot"] += digest != honest_digests[job]
            outcome = verify_run(spec, None, x, y, seed=job, commitment=run.commitment, result=weights_of(run),
                                 serve=run.serve, segments=sample_segments(run.commitment, job.to_bytes(8, "big"),
                                                                           samples),
                                 domain=DOMAIN, worker=worker)
            replayed += outcome.replayed_steps
            caught["optimistic"] += not outcome.accepted
        total = args.jobs * n
        predicted = detection_probability(segments, faked_count, samples)
        rows.append((fraction, "TMR (3 workers)", 2.0, caught["tmr"], None))
        rows.append((fraction, f"spot-checked replay ({args.spot:.0%})", spot_steps / total, caught["spot"], args.spot))
        rows.append((fraction, "optimistic (ours)", replayed / total, caught["optimistic"], predicted))
    # Honest optimistic jobs: the worker's snapshotting overhead and the coordinator's sampled replay, in wall time.
    honest_replayed, honest_verify = 0, 0.0
    for job in range(args.jobs):
        t = time.perf_counter()
        run = commit_training(spec, None, x, y, steps=n, seed=job, interval=k, task=TASK, domain=DOMAIN, key=KEY)
        commit_time += time.perf_counter() - t
        t = time.perf_counter()
        outcome = verify_run(spec, None, x, y, seed=job, commitment=run.commitment, result=weights_of(run),
                             serve=run.serve, segments=sample_segments(run.commitment, b"c%d" % job, samples),
                             domain=DOMAIN, worker=worker)
        honest_verify += time.perf_counter() - t
        assert outcome.accepted, outcome.reason
        honest_replayed += outcome.replayed_steps
    print()
    print("| faked segments | method | extra compute (steps, incl. bisection) | caught | predicted |")
    print("|---|---|---|---|---|")
    for fraction, method, extra, count, predicted in rows:
        shown = "" if predicted is None else f"{predicted:.1%}"
        print(f"| {fraction:.0%} | {method} | {extra:.1%} | {count}/{args.jobs} ({count / args.jobs:.0%}) | {shown} |")
    print()
    print(f"honest jobs, wall time: plain training {base_time:.2f} s; committing every step "
          f"{commit_time:.2f} s ({commit_time / base_time - 1:+.1%}); sampled replay {honest_verify:.2f} s "
          f"({honest_verify / base_time:.1%}); total {(commit_time + honest_verify) / base_time:.2f}x "
          f"with {k}-step segments; "
          f"replayed steps {honest_replayed / (args.jobs * n):.1%}")


if __name__ == "__main__":
    main()
