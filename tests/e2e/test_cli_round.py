"""A full round through the installed ``databright`` command, as a user runs it.

The node runs as its own process; it is stopped cleanly once and killed with
SIGKILL once between steps, and every committed transaction must still be
there afterwards. foundry's ``cast`` and raw JSON-RPC read the same state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests._servers import foundry_binary, free_port, rpc, stop, wait_for_rpc

BIN = Path(sys.executable).parent / "databright"


def cli(home: Path, *args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN), "--home", str(home), *map(str, args)], capture_output=True, text=True, timeout=300
    )
    if ok:
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return result


def cli_json(home: Path, *args: object) -> object:
    return json.loads(cli(home, *args, "--json").stdout)


class Node:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN), "--home", str(self.home), "node", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_rpc(self.url, self.process)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop(self.process, sig)
            self.process = None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    home = tmp_path / "home"
    cli(home, "init", "--accounts", "3")
    n = Node(home)
    try:
        yield n
    finally:
        n.stop(signal.SIGKILL)


def test_full_round_survives_restarts_and_kill(node: Node, tmp_path: Path) -> None:
    home = node.home
    rows = [{"f1": i, "f2": -i, "label": str(i % 2)} for i in range(20)]
    pd.DataFrame(rows[:10]).to_csv(tmp_path / "seed.csv", index=False)
    pd.DataFrame(rows[10:]).to_csv(tmp_path / "batch.csv", index=False)

    node.start()
    deployment = cli_json(home, "deploy")
    address = deployment["contracts"]["DataMarket"]["address"]  # type: ignore[index]
    created = cli_json(home, "dataset", "create", "parity", "--kind", "table", "--classes", "0,1",
                       "--seed", tmp_path / "seed.csv")
    assert created["items"] == 10  # type: ignore[index]

    node.stop()  # clean shutdown
    node.start()
    proposal = cli_json(home, "--account", "dev1", "propose", "1", tmp_path / "batch.csv")
    pid = proposal["proposal_id"]  # type: ignore[index]
    receipt_block = int(rpc(node.url, "eth_blockNumber"), 16)

    node.stop(signal.SIGKILL)  # no chance to flush anything
    node.start()
    assert int(rpc(node.url, "eth_blockNumber"), 16) >= receipt_block
    shown = cli_json(home, "proposal", "show", pid)
    assert shown["status"] == "open" and shown["items"] == 10  # type: ignore[index]

    cli(home, "vote", pid, "yes")
    assert cli_json(home, "finalize", pid)["status"] == "accepted"  # type: ignore[index]
    cli(home, "--account", "dev2", "revenue", "deposit", "1", "2ether")
    withdrawn = cli_json(home, "--account", "dev1", "revenue", "withdraw", "1")
    assert withdrawn["amount_wei"] > 0  # type: ignore[index]

    # foundry's cast and raw JSON-RPC read the same chain
    cast = foundry_binary("cast")
    count = subprocess.run([cast, "call", address, "dataset_count()(uint256)", "--rpc-url", node.url],
                           capture_output=True, text=True, timeout=60, check=True)
    assert count.stdout.strip() == "1"
    chain_id = subprocess.run([cast, "chain-id", "--rpc-url", node.url], capture_output=True, text=True,
                              timeout=60, check=True)
    assert chain_id.stdout.strip() == "31415"
    code = rpc(node.url, "eth_getCode", [address, "latest"])
    assert len(code) > 1000

    node.stop(signal.SIGKILL)
    # without a node running, the CLI opens the embedded chain in-process
    dataset = cli_json(home, "dataset", "show", "1")
    assert dataset["accepted_items"] == 20  # type: ignore[index]
    holders = {h["address"]: h for h in dataset["shareholders"]}  # type: ignore[index]
    assert len(holders) == 2
    assert sum(h["withdrawn_wei"] for h in holders.values()) == withdrawn["amount_wei"]  # type: ignore[index]

    bad = cli(home, "vote", pid, "yes", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
