"""``databright compute up|deploy|attest`` through the installed command, and their bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests._servers import stop
from tests.e2e.test_model_cli import BIN, cli, cli_json, fails
from tests.unit.models.conftest import digits_tables


def test_attest_prints_the_software_backend_labelled(tmp_path: Path) -> None:
    described = cli_json(tmp_path / "home", "compute", "attest")
    assert described["attestation"]["kind"] == "software"
    assert "operator" in described["attestation"]["label"]
    assert described["attestation"]["measurement"].startswith("0x")
    text = cli(tmp_path / "home", "compute", "attest").stdout
    assert "trust rests on the operator" in text and described["attestation"]["measurement"] in text


def test_deploy_adds_compute_market_to_an_older_deployment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli(home, "init", "--accounts", "2")
    fails(home, "compute", "deploy", match="DataMarket is not deployed")
    cli(home, "deploy")
    fails(home, "compute", "deploy", match="ComputeMarket is already deployed")
    manifest = next((home / "deployments").glob("*.json"))
    older = json.loads(manifest.read_text())
    first = older["contracts"].pop("ComputeMarket")["address"]
    manifest.write_text(json.dumps(older))
    address = cli_json(home, "compute", "deploy")["ComputeMarket"]
    assert address.startswith("0x") and address != first
    assert json.loads(manifest.read_text())["contracts"]["ComputeMarket"]["address"] == address


@pytest.mark.slow
def test_compute_up_serves_a_job_another_process_submits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = digits_tables(tmp_path)
    cli(home, "init", "--accounts", "2")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"])
    fails(home, "compute", "up", "--workers", "0", match="--workers must be at least 1")
    up = subprocess.Popen([str(BIN), "--home", str(home), "--json", "compute", "up", "--workers", "9", "--port", "0",
                           "--min-fee", "1gwei"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert up.stdout is not None
        started = time.monotonic()
        text = ""
        while not text.rstrip().endswith("}"):
            line = up.stdout.readline()
            assert line or up.poll() is None, up.stderr.read() if up.stderr else ""
            text += line
            assert time.monotonic() - started < 120
        info = json.loads(text)
        assert info["coordinator"].startswith("http://127.0.0.1:") and len(info["workers"]) == 9
        trained = cli(home, "train", "1", "--on-market", "--redundancy", "3", "--budget", "0.1ether", "--rounds", "1",
                      "--steps", "5", "--max-exposure", "34%", "--timeout", "180", "--json")
        out = json.loads(trained.stdout)
        assert out["job_id"] == 1 and out["paid_wei"] == 9 * 10**9 and 0 < out["score"] <= 1
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop(up, signal.SIGKILL)
            raise
    assert code == 0, up.stderr.read() if up.stderr else ""
    assert not (home / "chain" / "node.json").exists()  # the node it served is no longer announced
