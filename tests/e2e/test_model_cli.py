"""The model market through the installed ``databright`` command: train and
register, serve, buy predictions through a channel, kill -9 the server and
find its voucher redeemed after the restart, close; and bad input."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._servers import stop
from tests.unit.models.conftest import digits_tables

BIN = Path(sys.executable).parent / "databright"
PRICE = 10**12


def cli(home: Path, *args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN), "--home", str(home), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    if ok:
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return result


def digits_home(home: Path, paths: dict[str, Path], *create: str) -> Path:
    """A deployed home with dataset 1, the digits tables (``create``: more ``dataset create`` options)."""
    cli(home, "init", "--accounts", "3")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"], *create)
    return home


def cli_json(home: Path, *args: object) -> dict:  # type: ignore[type-arg]
    data: dict = json.loads(cli(home, *args, "--json").stdout)  # type: ignore[type-arg]
    return data


def fails(home: Path, *args: object, match: str) -> None:
    result = cli(home, *args, ok=False)
    assert result.returncode == 1, args
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], result.stderr


def serve(home: Path, *extra: str) -> subprocess.Popen[bytes]:
    announce = home / "models" / "serve-31415-1.json"
    announce.unlink(missing_ok=True)
    process = subprocess.Popen([str(BIN), "--home", str(home), "--account", "dev1", "model", "serve", "1",
                                "--port", "0", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            url = json.loads(announce.read_text())["url"]
            httpx.get(f"{url}/v1/models/1", timeout=5).raise_for_status()
            return process
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            time.sleep(0.3)
    stop(process, signal.SIGKILL)
    raise AssertionError("model serve did not start")


@pytest.mark.slow
def test_model_market_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = digits_tables(tmp_path)
    cli(home, "init", "--accounts", "4")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2")

    fails(home, "train", "1", "--register", match="--register needs --price and --royalty")
    fails(home, "train", "9", match="unknown dataset")
    fails(home, "model", "show", "1", match="unknown model")
    trained = cli_json(home, "--account", "dev1", "train", "1", "--steps", "40", "--register",
                       "--price", f"{PRICE}wei", "--royalty", "10%")
    assert trained["model_id"] == 1 and 0.5 < trained["score"] <= 1
    again = cli_json(home, "--account", "dev1", "train", "1", "--steps", "40")
    assert again["checkpoint"] == trained["checkpoint"]  # deterministic training
    listed = cli_json(home, "model", "list")["models"]
    assert [(m["model_id"], m["price_wei"], m["royalty_bps"]) for m in listed] == [(1, PRICE, 1000)]
    shown = cli_json(home, "model", "show", "1")
    assert shown["versions"][0]["checkpoint"] == trained["checkpoint"]

    fails(home, "--account", "dev3", "predict", "1", tmp_path / "missing.csv", match="no such file")
    fails(home, "--account", "dev3", "predict", "1", paths["queries"], match="no prediction server")
    fails(home, "--account", "dev3", "channel", "open", "1", "0", match="must be positive")
    fails(home, "--account", "dev3", "channel", "open", "7", "1ether", match="unknown model")
    fails(home, "--account", "dev3", "channel", "close", "9", match="unknown channel")

    server = serve(home, "--threshold", "1ether", "--deadline", "1h")
    try:
        fails(home, "--account", "dev3", "predict", "1", paths["queries"], match="pass --deposit")
        bought = cli_json(home, "--account", "dev3", "predict", "1", paths["queries"], "--deposit", "0.001ether")
        assert len(bought["predictions"]) == 10 and bought["paid_wei"] == 10 * PRICE
        more = cli_json(home, "--account", "dev3", "predict", "1", paths["queries"])
        assert more["channel"] == bought["channel"] and more["signed_wei"] == 20 * PRICE
    finally:
        stop(server, signal.SIGKILL)
    # the voucher the server answered for is on disk
    with sqlite3.connect(home / "models" / "vouchers-31415-1.sqlite") as db:
        assert db.execute("SELECT amount FROM vouchers").fetchall() == [(str(20 * PRICE),)]

    server = serve(home, "--threshold", "1ether", "--deadline", "1s")
    try:
        for _ in range(60):
            channels = cli_json(home, "--account", "dev3", "channel", "list")["channels"]
            if channels[0]["redeemed_wei"] == 20 * PRICE:
                break
            time.sleep(1)
        assert channels[0]["redeemed_wei"] == 20 * PRICE
    finally:
        stop(server, signal.SIGTERM)
    cli(home, "--account", "dev3", "channel", "topup", "1", "0.001ether")
    fails(home, "--account", "dev2", "channel", "close", "1", match="belongs to")
    closing = cli_json(home, "--account", "dev3", "channel", "close", "1")
    assert closing["closes_at"] > time.time()
    fails(home, "--account", "dev3", "channel", "settle", "1", match="challenge period running")
    fails(home, "--account", "dev3", "channel", "topup", "1", "1gwei", match="closing")
