"""Start-up of the commands people run most, through the installed command against a running node.

A read of an index that is at the chain's head talks to the node with plain
JSON-RPC and loads neither web3, eth_account nor torch (most of a command's
start-up otherwise); a read after a block it has not seen still syncs first, so
it is never stale. A yes vote checks the manifest without the SQL index. Which
modules load is checked with ``python -X importtime``, not with a clock: the
machine's load does not change it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import foundry_binary, free_port, stop, wait_for_rpc

BIN = Path(sys.executable).parent / "databright"
HEAVY = {"web3", "eth_account", "eth_keyfile", "py_ecc", "torch", "numpy", "pandas", "pyarrow", "vyper", "fastapi"}
_MAIN = "import sys; from databright.cli import main; main()"


def cli(home: Path, *args: object) -> str:
    result = subprocess.run([str(BIN), "--home", str(home), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def loaded(home: Path, *args: object) -> tuple[set[str], str]:
    """The top-level packages a command imports, and what it printed."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", _MAIN, "--home", str(home), *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
    modules = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return modules, result.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A home whose node runs as its own process: a table dataset with revenue and an open proposal."""
    tmp = tmp_path_factory.mktemp("startup")
    home = tmp / "home"
    cli(home, "init", "--accounts", "2")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = subprocess.Popen([str(BIN), "--home", str(home), "node", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_rpc(url, node)
        cli(home, "deploy")
        (tmp / "seed.csv").write_text("x,label\n" + "".join(f"{i},{'odd' if i % 2 else 'even'}\n" for i in range(8)))
        cli(home, "dataset", "create", "numbers", "--kind", "table", "--classes", "odd,even", "--seed",
            tmp / "seed.csv")
        cli(home, "revenue", "deposit", "1", "0.3ether")
        (tmp / "batch.csv").write_text("x,label\n101,odd\n")
        cli(home, "--account", "dev1", "propose", "1", tmp / "batch.csv")
        yield home, url
    finally:
        stop(node)


def test_reads_of_a_current_index_load_no_web3_and_no_torch(served: tuple[Path, str]) -> None:
    home, _ = served
    cli(home, "dataset", "list")  # the index catches up with the setup's blocks
    for args in (["--help"], ["dataset", "show", "1", "--json"], ["dataset", "list", "--json"],
                 ["proposal", "list", "--json"], ["shares", "dev0", "--json"], ["model", "list", "--json"],
                 ["compute", "jobs", "--json"]):
        modules, _ = loaded(home, *args)
        assert not modules & HEAVY, f"{args} loaded {sorted(modules & HEAVY)}"
    modules, out = loaded(home, "dataset", "show", "1", "--json")
    shown = json.loads(out)
    assert shown["revenue_total_wei"] == 3 * 10**17
    from databright.workspace import Workspace  # the contract client, through web3, for comparison

    ws = Workspace(home)
    try:
        for holder in shown["shareholders"]:
            assert holder["withdrawable_wei"] == ws.market.withdrawable(1, holder["address"]) > 0
        assert [p["proposal_id"] for p in json.loads(loaded(home, "proposal", "list", "--json")[1])["proposals"]] \
            == list(range(1, ws.market.proposal_count() + 1))
    finally:
        ws.close()


def test_a_read_after_a_block_it_has_not_seen_syncs_first(served: tuple[Path, str]) -> None:
    home, url = served
    before = json.loads(cli(home, "dataset", "show", "1", "--json"))["revenue_total_wei"]
    market = json.loads((home / "deployments" / "31415.json").read_text())["contracts"]["DataMarket"]["address"]
    key = _dev_key(home)
    subprocess.run([foundry_binary("cast"), "send", market, "deposit(uint256)", "1", "--value", "7",
                    "--private-key", key, "--rpc-url", url], check=True, capture_output=True, timeout=120)
    modules, out = loaded(home, "dataset", "show", "1", "--json")  # a block written around the CLI
    assert json.loads(out)["revenue_total_wei"] == before + 7
    assert "web3" in modules  # it read the new events through the contract client
    modules, out = loaded(home, "dataset", "show", "1", "--json")
    assert json.loads(out)["revenue_total_wei"] == before + 7 and not modules & HEAVY


def test_a_yes_vote_checks_the_manifest_without_the_index(served: tuple[Path, str]) -> None:
    home, _ = served
    proposal = json.loads(cli(home, "proposal", "list", "--status", "open", "--json"))["proposals"][-1]
    modules, out = loaded(home, "vote", proposal["proposal_id"], "yes", "--json")
    assert json.loads(out)["support"] is True
    assert "sqlalchemy" not in modules
    cached = json.loads((home / "cache" / "manifests" / f"{proposal['manifest_cid']}.json").read_text())
    assert cached[0] == proposal["items"] == 1


def _dev_key(home: Path) -> str:
    from databright.chain import Keystore
    from databright.workspace import DEV_PASSWORD

    return "0x" + bytes(Keystore(home / "keystore").unlock("dev0", DEV_PASSWORD).key).hex()
