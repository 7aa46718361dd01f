"""``databright train --on-market --verification optimistic``: one worker per task, sampled re-execution, a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from databright.storage import LocalBlobStore
from tests.e2e.test_model_cli import cli, digits_home
from tests.unit.models.conftest import digits_tables


def _usage(home: Path, *args: object, match: str) -> None:
    result = cli(home, "train", "1", *args, ok=False)
    assert result.returncode == 2, (args, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], result.stderr


@pytest.mark.slow
def test_train_on_market_with_optimistic_verification(tmp_path: Path) -> None:
    home = digits_home(tmp_path / "home", digits_tables(tmp_path), "--evaluator", "dev2")

    market = ("--on-market", "--budget", "1ether", "--workers", "3")
    _usage(home, "--verification", "optimistic", match="only applies with --on-market")
    _usage(home, *market, "--verification", "optimistic", "--redundancy", "3", match="needs --redundancy 1")
    _usage(home, *market, "--verification", "tmr", "--redundancy", "1", match="needs --redundancy 3")
    _usage(home, *market, "--verification", "majority", "--redundancy", "1", match="tmr, optimistic or none")
    _usage(home, *market, "--redundancy", "1", "--snapshot-every", "2", match="optimistic only")
    _usage(home, *market, "--verification", "optimistic", "--redundancy", "1", "--samples", "0",
           match="at least 1")

    result = cli(home, "train", "1", *market, "--verification", "optimistic", "--redundancy", "1",
                 "--snapshot-every", "2", "--rounds", "2", "--steps", "8", "--max-exposure", "34%",
                 "--worker-fee", "1gwei", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "round 2/2" in result.stderr and out["slashed"] == [] and 0.2 < out["score"] <= 1
    # 2 rounds x 3 shards, one worker each at 1 gwei: the coordinator's re-execution costs the job nothing.
    assert out["paid_wei"] == 6 * 10**9 and out["paid_wei"] + out["refunded_wei"] == 10**18
    report = json.loads(LocalBlobStore(home / "blobs").get(out["report"]))
    leases = [lease for task in report["tasks"] for lease in task["leases"]]
    assert len(leases) == 6
    for lease in leases:
        checked = lease["verification"]
        assert checked["verdict"] == "accepted" and checked["segments"] == 4 and checked["interval"] == 2
        assert checked["sampled"] and checked["replayed_steps"] == 2 * len(checked["sampled"])

