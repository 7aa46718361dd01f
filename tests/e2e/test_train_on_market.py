"""``databright train --on-market``: a TMR job on logical workers, from submit_job to a registered model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_model_cli import cli, cli_json, digits_home, fails
from tests.unit.models.conftest import digits_tables


@pytest.mark.slow
def test_train_on_market_registers_the_job_result(tmp_path: Path) -> None:
    home = digits_home(tmp_path / "home", digits_tables(tmp_path), "--evaluator", "dev2")

    fails(home, "train", "1", "--on-market", match="--on-market needs --budget")
    fails(home, "train", "1", "--budget", "1ether", match="only apply with --on-market")
    fails(home, "train", "1", "--on-market", "--budget", "1ether", "--redundancy", "2", "--workers", "3",
          match="--redundancy must be 1 or 3")
    fails(home, "train", "1", "--on-market", "--budget", "1ether", match="start 'databright compute up' first")

    result = cli(home, "train", "1", "--on-market", "--redundancy", "3", "--budget", "1ether", "--rounds", "2",
                 "--steps", "5", "--max-exposure", "34%", "--workers", "9", "--worker-fee", "1gwei", "--register", "--price", "1gwei",
                 "--royalty", "10%", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "round 2/2" in result.stderr and "submitted job 1" in result.stderr
    assert out["job_id"] == 1 and out["model_id"] == 1 and 0.3 < out["score"] <= 1
    # 2 rounds x 3 shards x 3 replicas at the workers' 1 gwei; the rest of the budget goes back.
    assert out["paid_wei"] == 18 * 10**9 and out["paid_wei"] + out["refunded_wei"] == 10**18
    # The job paid the dataset's training fee (0.1 ether); registering its model paid nothing more.
    assert out["job_training_fee_wei"] == 10**17 and out["training_fee_wei"] == 0
    assert out["registered_from_job"] == 1
    dataset = cli_json(home, "dataset", "show", "1")
    assert dataset["revenue_total_wei"] == 10**17
    assert dataset["revenue_by_source_wei"]["training_fee"] == 10**17
    # the index attributes the job's fee to the model it trained
    assert [m["training_fee_wei"] for m in dataset["models"]] == [10**17]
    paid = cli_json(home, "shares", "dev0")["models_paid"]  # dev0 created the dataset and holds every share
    assert [(p["model_id"], p["training_fee_wei"]) for p in paid] == [(1, 10**17)]
    version = cli_json(home, "model", "show", "1")["versions"][0]
    assert version["report"] == out["report"] and version["checkpoint"] == out["checkpoint"]
    assert version["claimed_score_ppm"] == round(out["score"] * 1_000_000)
    fails(home, "train", "1", "--on-market", "--budget", "1ether", "--workers", "0", match="--workers must be")
