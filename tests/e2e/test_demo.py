"""The README's demo command, as a user runs it, and what it leaves behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent / "databright"


def test_demo_runs_and_keeps_its_state(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    demo = subprocess.run([str(BIN), "--home", str(home), "demo", "--json"], capture_output=True, text=True,
                          timeout=900)
    assert demo.returncode == 0, demo.stderr
    result = json.loads(demo.stdout)
    proposals = {p["kind"]: p for p in result["proposals"]}
    flipped = proposals["flipped labels"]
    assert flipped["gain"] < 0 and flipped["outcome"] == "rejected" and flipped["mislabels"] > 20
    assert proposals["repeats accepted items"]["outcome"] == "rejected"
    clean = [p for p in result["proposals"] if p["kind"] == "clean"]
    assert all(p["outcome"] == "accepted" for p in clean)
    shares = [p["shares"] for p in clean]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1] > 0
    sale = result["model_sale"]
    assert sale["predictions"] == 200 and sale["paid_wei"] == 200 * 10**15
    assert sale["royalty_wei"] == 200 * 10**15 // 10 and sale["claimed_score"] > 0.5
    assert round(sale["verified_score"] * 10**6) == round(sale["claimed_score"] * 10**6)  # reproduced bitwise
    growth = [h["royalty_wei"] for h in sale["holders"]]
    assert all(g > 0 for g in growth) and sale["royalty_wei"] - len(growth) <= sum(growth) <= sale["royalty_wei"]
    job = result["compute_round"]  # redundancy 3 on logical workers, one of them returning perturbed weights
    assert job["job_id"] == 1 and job["model_id"] == sale["model_id"] + 1 and job["score"] > 0.5
    [cheat] = job["slashed"]
    assert cheat["reason"] == "result differs from the majority" and cheat["lost_wei"] == 10**16
    assert job["paid_tasks"] >= 9 and job["paid_wei"] + job["refunded_wei"] == 10**17
    assert job["training_fee_wei"] == 10**18 and job["seconds"] < 60
    assert job["registration_fee_wei"] == 0  # registered from the job, whose submission paid the fee
    report = Path(result["report"])
    assert report.is_file() and (report.parent / "value-per-proposal.png").stat().st_size > 1000

    shown = subprocess.run([str(BIN), "--home", str(home), "dataset", "show", "1", "--json"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    dataset = json.loads(shown.stdout)
    assert dataset["accepted_items"] == 179 + 100 * len(clean)
    assert {h["address"] for h in dataset["shareholders"]} >= {h["address"] for h in result["holders"]}
    assert len(dataset["shareholders"]) == 1 + len(clean)
    # The first model's registration and the compute job's fee, once: its model registered without one.
    assert dataset["revenue_by_source_wei"]["training_fee"] == 2 * 10**18
    assert dataset["revenue_by_source_wei"]["royalty"] == sale["royalty_wei"]
    model, trained = dataset["models"]
    assert trained["model_id"] == job["model_id"] and trained["predictions"] == 0
    assert trained["training_fee_wei"] == model["training_fee_wei"] == 10**18  # the job's fee is its model's
    assert model["predictions"] == 200 and model["verified_score_ppm"] == round(sale["verified_score"] * 10**6)

    export = tmp_path / "export"
    exported = subprocess.run([str(BIN), "--home", str(home), "dataset", "export", "1", str(export), "--json"],
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    frame = pd.read_parquet(export / "items.parquet")
    assert len(frame) == dataset["accepted_items"]
    assert all((export / "files" / f["path"]).is_file() for f in frame["file"])  # a copy beside the embedded bytes
    assert frame["file"][0]["bytes"].startswith(b"\x89PNG")
    import datasets

    loaded = datasets.load_dataset("parquet", data_files=str(export / "items.parquet"), split="train")
    assert loaded.num_rows == len(frame)
    assert loaded.features["label"].names == [str(d) for d in range(10)] and loaded[0]["file"].size == (8, 8)

    verify = subprocess.run([str(BIN), "--home", str(home), "evaluate", "--verify", flipped["report_cid"], "--json"],
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["identical"] is True
