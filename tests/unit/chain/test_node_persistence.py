"""Durability of the embedded chain: restart, ``kill -9``, the writer lock, genesis checks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from databright.chain.node import ChainError, EmbeddedNode, EmbeddedProvider, Genesis

SRC = Path(__file__).resolve().parents[3] / "src"


def test_genesis_json_round_trip(tmp_path: Path, genesis: Genesis) -> None:
    path = tmp_path / "genesis.json"
    genesis.save(path)
    assert Genesis.load(path) == genesis
    raw = json.loads(path.read_text())
    assert set(raw) == {"chain_id", "alloc", "gas_limit", "timestamp"}
    hexed = Genesis.model_validate({"chain_id": 1, "alloc": {"0x" + "ab" * 20: "0x10"}})
    assert list(hexed.alloc.values()) == [16]


def test_state_survives_restart(tmp_path: Path, genesis: Genesis, accounts: list[Any],
                                counter_artifact: Any, deploy: Any) -> None:
    path = tmp_path / "chain.sqlite"
    node = EmbeddedNode(path, genesis)
    w3 = Web3(EmbeddedProvider(node))
    from web3.middleware import SignAndSendRawMiddlewareBuilder
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(accounts[0]), layer=0)
    w3.eth.default_account = accounts[0].address
    counter = deploy(w3, counter_artifact, 41)
    tx_hash = counter.functions.increment(1).transact()
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    head = w3.eth.get_block("latest")
    node.close()

    reopened = EmbeddedNode(path, genesis)
    w3 = Web3(EmbeddedProvider(reopened))
    assert w3.eth.get_block("latest") == head
    assert w3.eth.get_transaction_receipt(tx_hash) == receipt
    contract = w3.eth.contract(address=counter.address, abi=counter_artifact.abi)
    assert contract.functions.count().call() == 42
    assert w3.eth.get_transaction_count(accounts[0].address) == 2
    reopened.close()


def test_other_genesis_is_refused(tmp_path: Path, genesis: Genesis) -> None:
    path = tmp_path / "chain.sqlite"
    EmbeddedNode(path, genesis).close()
    other = genesis.model_copy(update={"chain_id": genesis.chain_id + 1})
    with pytest.raises(ChainError, match="genesis"):
        EmbeddedNode(path, other)


def test_second_writer_is_refused(node: EmbeddedNode, genesis: Genesis) -> None:
    with pytest.raises(ChainError, match=rf"in use by another process \(pid {os.getpid()}\)"):
        EmbeddedNode(node.path, genesis)
    code = ("import sys; from pathlib import Path; "
            "from databright.chain.node import EmbeddedNode, Genesis, ChainError\n"
            "try:\n"
            f"    EmbeddedNode(Path({str(node.path)!r}), Genesis.load(Path(sys.argv[1])))\n"
            "except ChainError as e:\n    print(e); sys.exit(3)\n")
    genesis_path = node.path.parent / "genesis.json"
    genesis.save(genesis_path)
    result = subprocess.run([sys.executable, "-c", code, str(genesis_path)],
                            capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 3, result.stderr
    assert f"chain is in use by another process (pid {os.getpid()})" in result.stdout


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def _start_node(db: Path, genesis_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "databright.chain.node", str(db), str(genesis_path),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise AssertionError(f"node did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, line.strip().split()[-1]


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(url, data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_committed_transactions_survive_sigkill(tmp_path: Path, genesis: Genesis,
                                                accounts: list[Any], counter_artifact: Any,
                                                deploy: Any) -> None:
    db, genesis_path = tmp_path / "chain.sqlite", tmp_path / "genesis.json"
    genesis.save(genesis_path)
    proc, url = _start_node(db, genesis_path)
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        from web3.middleware import SignAndSendRawMiddlewareBuilder
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(accounts[0]), layer=0)
        w3.eth.default_account = accounts[0].address
        counter = deploy(w3, counter_artifact, 10)
        tx_hash = counter.functions.increment(5).transact()
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt.status == 1
        balance = w3.eth.get_balance(accounts[0].address)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL

    proc, url = _start_node(db, genesis_path)  # the lock died with the killed process
    try:
        got = _rpc(url, "eth_getTransactionReceipt", [tx_hash.to_0x_hex()])["result"]
        assert got["status"] == "0x1" and int(got["blockNumber"], 16) == receipt.blockNumber
        tx = _rpc(url, "eth_getTransactionByHash", [tx_hash.to_0x_hex()])["result"]
        assert tx["hash"] == tx_hash.to_0x_hex()
        assert int(_rpc(url, "eth_getBalance", [accounts[0].address, "latest"])["result"],
                   16) == balance
        slot = _rpc(url, "eth_getStorageAt", [counter.address, "0x0", "latest"])["result"]
        assert int(slot, 16) == 15
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("count", [0, 1, 2, 16, 17, 127, 128, 129, 300])
def test_block_trie_matches_py_evm(count: int) -> None:
    from eth.db.trie import _make_trie_root_and_nodes

    from databright.chain._evm import trie_root_and_nodes

    values = [bytes([i % 251]) * (1 + i % 70) for i in range(count)]
    assert trie_root_and_nodes(values) == _make_trie_root_and_nodes(tuple(values))


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]


def _receipt(url: str, tx_hash: str) -> Any:
    import time

    for _ in range(200):
        reply = _rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if "error" in reply or reply["result"] is not None:
            return reply
        time.sleep(0.05)
    raise AssertionError(f"no receipt for {tx_hash}")


@pytest.mark.slow
def test_acknowledged_transactions_survive_sigkill(tmp_path: Path, genesis: Genesis,
                                                   accounts: list[Any],
                                                   sign_transfer: Any) -> None:
    """Every hash ``eth_sendRawTransaction`` returned is mined after a ``kill -9``
    and a restart: a transaction waiting for an earlier nonce (so certainly not
    mined when the node died) and a burst that was racing the miner."""
    db, genesis_path = tmp_path / "chain.sqlite", tmp_path / "genesis.json"
    genesis.save(genesis_path)
    proc, url = _start_node(db, genesis_path)
    try:
        waiting = _rpc(url, "eth_sendRawTransaction",
                       ["0x" + sign_transfer(accounts[0], 1, value=7).hex()])["result"]
        burst = [_rpc(url, "eth_sendRawTransaction",
                      ["0x" + sign_transfer(accounts[1], n, value=1).hex()])["result"]
                 for n in range(20)]
        assert _rpc(url, "eth_getTransactionReceipt", [waiting])["result"] is None
    finally:
        _kill(proc)
    proc, url = _start_node(db, genesis_path)
    try:
        assert all(_receipt(url, h)["result"]["status"] == "0x1" for h in burst)
        pooled = _rpc(url, "eth_getTransactionByHash", [waiting])["result"]
        assert pooled["hash"] == waiting and pooled["blockNumber"] is None  # pooled again
        first = _rpc(url, "eth_sendRawTransaction",
                     ["0x" + sign_transfer(accounts[0], 0, value=5).hex()])["result"]
        assert _receipt(url, first)["result"]["status"] == "0x1"
        assert _receipt(url, waiting)["result"]["status"] == "0x1"
    finally:
        _stop(proc)


def test_a_journaled_transaction_that_no_longer_fits_is_reported(
        tmp_path: Path, genesis: Genesis, accounts: list[Any], sign_transfer: Any) -> None:
    """On reopening, a journaled transaction the chain can no longer take (here
    its nonce was used meanwhile) is reported as dropped, with the reason."""
    import sqlite3

    path = tmp_path / "chain.sqlite"
    with EmbeddedNode(path, genesis) as node:
        mined = node.ledger.submit(sign_transfer(accounts[0], 0))
        node.handle("eth_getTransactionReceipt", ["0x" + mined.hex()])
    stale = sign_transfer(accounts[0], 0, value=9)
    stale_hash = Web3.keccak(stale)
    with sqlite3.connect(path) as conn:  # what a crash could leave in the journal
        conn.execute("INSERT INTO pool (seq, hash, sender, raw) VALUES (?, ?, ?, ?)",
                     (99, bytes(stale_hash), bytes.fromhex(accounts[0].address[2:]), stale))
    with EmbeddedNode(path, genesis) as node:
        with pytest.raises(Exception, match="was dropped: nonce too low"):
            node.handle("eth_getTransactionReceipt", [stale_hash.to_0x_hex()])
        assert node.ledger.submit(sign_transfer(accounts[0], 1)) is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM pool").fetchone()[0] in (0, 1)
