"""Ledger throughput: 1,000 votes to ``databright node`` and to anvil, same client.

Both nodes get the same DataMarket deployment and the same setup (50 voters
holding shares, 20 open proposals); then the same client sends 1,000 signed
``vote`` transactions (50 voters x 20 proposals) over JSON-RPC/HTTP with one
keep-alive connection. Transactions are signed before the clock starts, so the
figures measure the node, not the signer. Two modes:

- pipelined: send all 1,000, then wait for every receipt (how a busy client or
  many users load a node);
- sequential: send one, wait for its receipt, send the next (how one CLI user
  experiences latency); measured on the first 200 votes.

Run: ``.venv/bin/python bench/ledger.py`` (anvil from ``npm install``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from databright.chain import DataMarket, DatasetParams, Keystore, Ledger, compile_contract, deploy  # noqa: E402
from databright.storage import Manifest, ManifestItem, cid_of, digest_of_cid  # noqa: E402
from databright.workspace import DEV_PASSWORD  # noqa: E402
from tests._servers import Anvil, foundry_binary, free_port, stop, wait_for_rpc  # noqa: E402

VOTERS = 50
PROPOSALS = 20
VOTE_GAS = 90_000


class Client:
    """A minimal JSON-RPC client on one keep-alive HTTP connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        reply = self.session.post(
            self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}, timeout=120
        ).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait(self, tx_hash: str) -> dict[str, Any]:
        while True:
            receipt = self.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt  # type: ignore[no-any-return]
            time.sleep(0.001)


def _setup(url: str, owner: LocalAccount, cache: Path) -> tuple[DataMarket, list[LocalAccount], list[int]]:
    ledger = Ledger(Web3(Web3.HTTPProvider(url)))
    deployment = deploy(ledger, owner, cache)
    market = DataMarket(ledger, deployment.address("DataMarket"), compile_contract("data_market", cache).abi)
    params = DatasetParams(metadata_digest=b"\x01" * 32, initial_shares=VOTERS * 100, voting_period=86_400)
    dataset_id = market.create_dataset(owner, params)
    voters = [Account.from_key(i.to_bytes(32, "big")) for i in range(1000, 1000 + VOTERS)]
    for voter in voters:
        ledger.transact(owner, to=voter.address, value=10**18, gas=21_000)
        market.transfer(owner, voter.address, dataset_id, 100)
    proposals = []
    for k in range(PROPOSALS):
        manifest = Manifest([ManifestItem(cid_of(f"bench {k} {i}".encode()), "x") for i in range(10)])
        proposals.append(market.propose(owner, dataset_id, manifest.root, digest_of_cid(manifest.cid), 10))
    return market, voters, proposals


def _signed_votes(market: DataMarket, voters: list[LocalAccount], proposals: list[int], chain_id: int,
                  base_fee: int) -> list[str]:
    raw = []
    for nonce, proposal_id in enumerate(proposals):
        for voter in voters:
            data = market.vote_call(proposal_id, voter.address, True)._encode_transaction_data()
            tx = {"to": market.address, "data": data, "value": 0, "gas": VOTE_GAS, "nonce": nonce,
                  "chainId": chain_id, "maxFeePerGas": 4 * base_fee + 10**9, "maxPriorityFeePerGas": 10**9,
                  "type": 2}
            raw.append("0x" + voter.sign_transaction(tx).raw_transaction.hex())
    # interleave voters so consecutive transactions come from different senders
    return raw


def _measure(url: str, owner: LocalAccount, cache: Path) -> dict[str, float]:
    market, voters, proposals = _setup(url, owner, cache)
    client = Client(url)
    chain_id = int(client.call("eth_chainId", []), 16)
    base_fee = int(client.call("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    votes = _signed_votes(market, voters, proposals, chain_id, base_fee)
    sequential_n = 200
    start = time.perf_counter()
    for raw in votes[:sequential_n]:
        receipt = client.wait(client.call("eth_sendRawTransaction", [raw]))
        assert receipt["status"] == "0x1"
    sequential = sequential_n / (time.perf_counter() - start)
    rest = votes[sequential_n:]
    start = time.perf_counter()
    hashes = [client.call("eth_sendRawTransaction", [raw]) for raw in rest]
    receipts = [client.wait(h) for h in hashes]
    pipelined = len(rest) / (time.perf_counter() - start)
    assert all(r["status"] == "0x1" for r in receipts)
    gas = statistics.median(int(r["gasUsed"], 16) for r in receipts)
    blocks = len({r["blockNumber"] for r in receipts})
    return {"pipelined": pipelined, "sequential": sequential, "gas": gas, "blocks": blocks, "votes": len(votes)}


def _owner(home: Path) -> LocalAccount:
    binary = str(Path(sys.executable).parent / "databright")
    subprocess.run([binary, "--home", str(home), "init", "--accounts", "1"], check=True, capture_output=True)
    return Keystore(home / "keystore").unlock("dev0", DEV_PASSWORD)


def _embedded(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = str(Path(sys.executable).parent / "databright")
    port = free_port()
    process = subprocess.Popen([binary, "--home", str(home), "node", "--port", str(port)],
                               stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for_rpc(url, process)
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    args = parser.parse_args()
    foundry_binary("anvil")
    results: dict[str, list[dict[str, float]]] = {"databright node": [], "anvil": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            owner = _owner(Path(tmp) / "home")

            def ours() -> None:
                process, url = _embedded(Path(tmp) / "home")
                try:
                    results["databright node"].append(_measure(url, owner, cache))
                finally:
                    stop(process)

            def anchor() -> None:
                anvil = Anvil(chain_id=31415)
                try:
                    anvil.fund(owner.address, 10**24)
                    results["anvil"].append(_measure(anvil.url, owner, cache))
                finally:
                    anvil.close()

            for measure in (ours, anchor) if run % 2 == 0 else (anchor, ours):  # alternate who goes first
                measure()
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def ratio(key: str) -> float:
        """Median of the per-run ratios: each run measures both nodes under the same load."""
        pairs = zip(results["databright node"], results["anvil"], strict=True)
        return statistics.median(ours[key] / anchor[key] for ours, anchor in pairs)

    print(f"\n1,000 DataMarket votes per run, {args.runs} runs, medians (2-core machine)\n")
    print("| mode | databright node (tx/s) | anvil (tx/s) | ratio (median of runs) |")
    print("|---|---:|---:|---:|")
    for key, label in (("pipelined", "pipelined (800 votes)"), ("sequential", "sequential (200 votes)")):
        print(f"| {label} | {med('databright node', key):,.0f} | {med('anvil', key):,.0f} | {ratio(key):.2f}x |")
    print(f"\nvote gas (median receipt): databright node {med('databright node', 'gas'):,.0f}, "
          f"anvil {med('anvil', 'gas'):,.0f}; blocks for the pipelined votes: databright node "
          f"{med('databright node', 'blocks'):.0f}, anvil {med('anvil', 'blocks'):.0f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
