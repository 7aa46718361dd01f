"""The same CLI commands against a real Ethereum node (anvil) via --rpc-url."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from eth_account import Account

from tests._servers import Anvil

BIN = Path(sys.executable).parent / "databright"


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil()
    try:
        yield node
    finally:
        node.close()


def test_cli_round_on_anvil(anvil: Anvil, tmp_path: Path) -> None:
    home = tmp_path / "home"
    password = tmp_path / "pw"
    password.write_text("correct horse battery staple\n")

    def cli(*args: object) -> object:
        result = subprocess.run(
            [str(BIN), "--home", str(home), "--rpc-url", anvil.url, "--password-file", str(password),
             *map(str, args), "--json"],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return json.loads(result.stdout)

    cli("init", "--accounts", "0")
    keys = []
    for name, seed in (("alice", 0xA11CE), ("bob", 0xB0B)):
        key = tmp_path / f"{name}.key"
        key.write_text(hex(seed)[2:].rjust(64, "0"))
        account = cli("account", "import", name, "--private-key-file", key)
        anvil.fund(account["address"], 100 * 10**18)  # type: ignore[index]
        keys.append(account)
    assert keys[0]["address"] == Account.from_key(0xA11CE.to_bytes(32, "big")).address  # type: ignore[index]

    deployment = cli("--account", "alice", "deploy")
    assert deployment["chain_id"] == 31337  # type: ignore[index]
    rows = [{"a": i, "label": "x" if i % 2 else "y"} for i in range(8)]
    pd.DataFrame(rows[:4]).to_csv(tmp_path / "seed.csv", index=False)
    pd.DataFrame(rows[4:]).to_csv(tmp_path / "batch.csv", index=False)
    cli("--account", "alice", "dataset", "create", "anvil-data", "--kind", "table", "--seed", tmp_path / "seed.csv")
    proposal = cli("--account", "bob", "propose", "1", tmp_path / "batch.csv")
    pid = proposal["proposal_id"]  # type: ignore[index]
    cli("--account", "alice", "vote", pid, "yes")
    assert cli("--account", "bob", "finalize", pid)["status"] == "accepted"  # type: ignore[index]
    shown = cli("dataset", "show", "1")
    assert shown["accepted_items"] == 8  # type: ignore[index]
    assert {h["address"] for h in shown["shareholders"]} == {k["address"] for k in keys}  # type: ignore[index]
