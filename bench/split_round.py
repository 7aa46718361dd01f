"""What a split round would cost the demo: one market round split in two, unsplit, and with TMR.

Builds a home on the embedded chain (300 digits rows, the dataset's own MLP),
then runs, in this process and one after the other, the demo's compute round
(redundancy 3), the same round split into 2 pieces with redundancy 1, and the
same round unsplit with redundancy 1: each a full ``train --on-market`` job on
12 logical workers (submission, coordinator, workers, settlement). The first
job also stakes the workers, so it runs twice and the second run is the one
reported. The demo takes a split round only if it adds at most 3 s.

Run: ``.venv/bin/python bench/split_round.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databright.cli._train_market import JobRequest, train_on_market  # noqa: E402
from databright.compute._jobspec import JobSettings  # noqa: E402
from databright.ml import ModelSpec  # noqa: E402
from databright.workspace import Workspace  # noqa: E402

BIN = Path(sys.executable).with_name("databright")
WORKERS, STEPS, EXPOSURE_BPS = 12, 20, 3400  # as demo_compute.py


def _home(folder: Path) -> Path:
    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i:02d}" for i in range(64)])
    frame["label"] = digits.target.astype(str)
    frame.iloc[:300].to_csv(folder / "seed.csv", index=False)
    frame.iloc[1500:1700].to_csv(folder / "validation.csv", index=False)
    home = folder / "home"
    for args in (["init", "--accounts", "3"], ["deploy"],
                 ["dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
                  "--seed", str(folder / "seed.csv"), "--validation", str(folder / "validation.csv")]):
        subprocess.run([str(BIN), "--home", str(home), *args], check=True, capture_output=True)
    return home


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(_home(Path(tmp)))
        try:
            ws.sync()
            spec = ModelSpec.from_json(json.dumps(json.loads(ws.index.dataset(1).metadata_json)["model_spec"]))
            runs = [("TMR, redundancy 3 (staking)", 3, None), ("TMR, redundancy 3 (the demo's round)", 3, None),
                    ("split 2, redundancy 1", 1, JobSettings("none", split=2)), ("unsplit, redundancy 1", 1, None)]
            times: dict[str, float] = {}
            for name, redundancy, settings in runs:
                started = time.perf_counter()
                train_on_market(ws, JobRequest(1, spec.to_json(), 1, STEPS, redundancy, EXPOSURE_BPS, 10**17,
                                               86_400, 600.0, settings), WORKERS, worker_fee=10**12)
                times[name] = time.perf_counter() - started
        finally:
            ws.close()
    print("| round | seconds |\n|---|---|")
    for name, seconds in list(times.items())[1:]:
        print(f"| {name} | {seconds:.2f} |")
    split = times["split 2, redundancy 1"]
    print(f"\na split round would add {split:.2f} s to the demo (goal <= 3 s); split / unsplit = "
          f"{split / times['unsplit, redundancy 1']:.2f}x")


if __name__ == "__main__":
    main()
