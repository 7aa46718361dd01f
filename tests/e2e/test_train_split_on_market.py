"""``databright train --on-market --split 2``: a split job on logical workers gives the unsplit job's bits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_model_cli import cli, digits_home
from tests.unit.models.conftest import digits_tables


def _home(tmp_path: Path, name: str, paths: dict[str, Path]) -> Path:
    return digits_home(tmp_path / name, paths)


JOB = ("train", "1", "--on-market", "--redundancy", "1", "--budget", "1ether", "--rounds", "2", "--steps", "5",
       "--max-exposure", "50%", "--workers", "4", "--json")


@pytest.mark.slow
def test_a_split_job_gives_the_bits_of_the_unsplit_job(tmp_path: Path) -> None:
    paths = digits_tables(tmp_path)
    split_home, whole_home = _home(tmp_path, "split", paths), _home(tmp_path, "whole", paths)

    refused = cli(split_home, *JOB[:-1], "--split", "3", ok=False)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "--split" in lines[0] and "1 to 2 pieces" in lines[0], \
        refused.stderr
    assert "submitted job" not in refused.stderr  # refused before anything reached the chain

    split = cli(split_home, *JOB, "--split", "2")
    whole = cli(whole_home, *JOB)
    out, reference = json.loads(split.stdout), json.loads(whole.stdout)
    assert out["job_id"] == reference["job_id"] == 1 and out["slashed"] == []
    # Pipelined training on two workers per shard gives exactly the model trained whole.
    assert out["checkpoint"] == reference["checkpoint"]  # a CID names the bytes: equal CIDs, equal bits
    assert out["score"] == reference["score"] and "split" not in reference

    pieces = out["split"]["pieces"]
    assert [p["stage"] for p in pieces] == [0, 1] and all(p["params"] > 0 for p in pieces)
    accepted = [p for p in out["split"]["pipelines"] if p["status"] == "submitted"]
    assert len(accepted) == 4  # 2 rounds x 2 shards, each a pipeline of two different workers
    assert all(len({s["worker"] for s in p["stages"]}) == 2 for p in accepted)
