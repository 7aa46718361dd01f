"""``databright node --check`` and ``--backup``: one line of result, non-zero on damage."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from databright.chain.node import EmbeddedNode, Genesis
from databright.config import Home
from databright.errors import ChainError
from databright.workspace import Workspace

from tests.unit.cli.conftest import Run

SRC = Path(__file__).resolve().parents[3] / "src"


def test_check_and_backup(run: Run, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, _, err = run("--home", home, "init", "--accounts", "1")
    assert code == 0, err
    paths = Home(home)
    with EmbeddedNode(paths.chain_db, Genesis.load(paths.genesis_file)) as node:
        node.handle("evm_mine", [])
    code, out, err = run("--home", home, "node", "--check")
    assert code == 0 and "ok, head block 1" in out, err
    code, out, err = run("--home", home, "node", "--backup", tmp_path / "copy.sqlite")
    assert code == 0 and "ok, head block 1" in out.replace("\n", ""), err
    code, _, err = run("--home", home, "node", "--backup", tmp_path / "copy.sqlite")
    assert code == 1 and "already exists" in err
    with sqlite3.connect(paths.chain_db) as conn:  # the log emptied: the cut pages are nowhere
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = paths.chain_db.read_bytes()
    paths.chain_db.write_bytes(data[: len(data) // 2])
    code, _, err = run("--home", home, "node", "--check")
    assert code == 1 and "truncated" in err and len(err.strip().splitlines()) == 1
    assert paths.chain_db.read_bytes() == data[: len(data) // 2]  # left as it was


def test_a_lost_chain_with_contracts_is_not_replaced(run: Run, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("--home", home, "init", "--accounts", "1")[0] == 0
    paths = Home(home)
    chain_id = Genesis.load(paths.genesis_file).chain_id
    paths.deployments.mkdir(parents=True, exist_ok=True)
    (paths.deployments / f"{chain_id}.json").write_text("{}")
    ws = Workspace(home)
    try:
        with pytest.raises(ChainError, match="is missing but DataMarket was deployed"):
            ws.ledger  # noqa: B018 - opening it is the test
    finally:
        ws.close()
    assert not paths.chain_db.exists()


def test_node_flags_reach_the_server(run: Run, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("--home", home, "init", "--accounts", "1")[0] == 0
    binary = Path(sys.executable).parent / "databright"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([str(binary), "--home", str(home), "node", "--port", "0", "--dev",
                             "--cors-origin", "http://localhost:3000", "--allowed-host", "node.lan"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [60]}).encode()
        request = urllib.request.Request(url, data=body, headers={
            "Content-Type": "application/json", "Origin": "http://localhost:3000", "Host": "node.lan"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["result"] == "0x3c"
            assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
