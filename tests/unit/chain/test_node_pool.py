"""The pool and the miner: what admission refuses, and why no transaction can stop blocks."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from eth.constants import SECPK1_N
from eth_account.signers.local import LocalAccount

from databright.chain import _evm
from databright.chain.node import EmbeddedNode, RpcError, serve

from .conftest import CHAIN_ID

FEE = 21_000 * 10 * 10**9  # what conftest's signed transfers reserve for gas


def high_s(raw: bytes) -> bytes:
    """The same EIP-1559 transaction with the other, high-s, form of its signature
    (s' = n - s, parity flipped): it still recovers to the same sender."""
    assert raw[0] == 2
    fields = rlp.decode(raw[1:])
    s = int.from_bytes(fields[-1], "big")
    y_parity = int.from_bytes(fields[-3], "big")
    fields[-3] = b"" if y_parity else b"\x01"
    fields[-1] = (SECPK1_N - s).to_bytes(32, "big")
    return b"\x02" + rlp.encode(fields)


def rich_and_poor(node: EmbeddedNode, accounts: list[LocalAccount], sign_transfer: Any,
                  balance: int) -> Any:
    """A fresh account holding exactly ``balance`` wei."""
    from eth_account import Account

    poor = Account.from_key(b"\x51" * 32)
    funded = node.ledger.submit(sign_transfer(accounts[0], 0, to=poor.address, value=balance))
    assert node.handle("eth_getTransactionReceipt", ["0x" + funded.hex()])["status"] == "0x1"
    return poor


def receipt_when_done(node: EmbeddedNode, tx_hash: bytes) -> Any:
    for _ in range(50):
        receipt = node.handle("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if receipt is not None:
            return receipt
    raise AssertionError("not mined")


def test_pooled_spending_counts_against_the_balance(node: EmbeddedNode,
                                                    accounts: list[LocalAccount],
                                                    sign_transfer: Any) -> None:
    """Two transactions each affordable alone but not together: the second is
    refused at once, as geth and anvil do (-32003)."""
    poor = rich_and_poor(node, accounts, sign_transfer, 2 * FEE + 10**15)
    with node.ledger._lock:  # the miner waits: both meet the same pool
        node.ledger.submit(sign_transfer(poor, 0, value=10**15))
        with pytest.raises(RpcError, match="insufficient funds for gas \\* price \\+ value") as err:
            node.ledger.submit(sign_transfer(poor, 1, value=10**15))
        assert err.value.code == -32003
        node.ledger.submit(sign_transfer(poor, 1, value=0))  # this one still fits


def test_miner_drops_what_no_longer_fits_and_keeps_mining(
        node: EmbeddedNode, accounts: list[LocalAccount], sign_transfer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If the pool ever holds two transactions that overdraw their sender (here the
    admission check is switched off), the miner drops the second with its reason
    and blocks keep coming."""
    poor = rich_and_poor(node, accounts, sign_transfer, 2 * FEE + 10**15)
    monkeypatch.setattr(_evm, "queued_cost", lambda *args: 0)
    with node.ledger._lock:
        first = node.ledger.submit(sign_transfer(poor, 0, value=10**15))
        second = node.ledger.submit(sign_transfer(poor, 1, value=10**15))
    assert receipt_when_done(node, first)["status"] == "0x1"
    with pytest.raises(RpcError, match="was dropped: insufficient funds") as err:
        node.handle("eth_getTransactionReceipt", ["0x" + second.hex()])
    assert err.value.code == -32000
    later = node.ledger.submit(sign_transfer(accounts[1], 0))
    assert receipt_when_done(node, later)["status"] == "0x1"


def test_high_s_signature_is_refused(node: EmbeddedNode, accounts: list[LocalAccount],
                                     sign_transfer: Any) -> None:
    raw = high_s(sign_transfer(accounts[0], 0))
    with pytest.raises(RpcError, match="^invalid sender: invalid transaction v, r, s values$"):
        node.ledger.submit(raw)


def test_tip_above_fee_cap_is_refused(node: EmbeddedNode, accounts: list[LocalAccount]) -> None:
    tx = {"to": "0x" + "22" * 20, "value": 1, "nonce": 0, "chainId": CHAIN_ID, "gas": 21_000,
          "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 2 * 10**9}
    raw = bytes(accounts[0].sign_transaction(tx).raw_transaction)
    with pytest.raises(RpcError, match="^max priority fee per gas higher than max fee per gas$"):
        node.ledger.submit(raw)
    assert node.handle("eth_getTransactionCount", [accounts[0].address, "pending"]) == "0x0"


@pytest.fixture
def served(node: EmbeddedNode) -> Iterator[EmbeddedNode]:
    server = serve(node)
    yield node
    server.shutdown()


def test_writer_survives_a_high_s_transaction(served: EmbeddedNode,
                                              accounts: list[LocalAccount],
                                              sign_transfer: Any) -> None:
    """A high-s transaction handed straight to the writer (past the front end's
    check) is dropped by the miner with its reason; the next one is mined."""
    from databright.chain._split import RemoteLedger

    ledger = served.ledger
    assert isinstance(ledger, RemoteLedger)
    raw = high_s(sign_transfer(accounts[0], 0))
    sender = bytes.fromhex(accounts[0].address[2:])
    bad, _ = ledger._call("add", raw, sender)  # (hash, whether it had no nonce gap)
    normal = ledger.submit(sign_transfer(accounts[1], 0))
    assert receipt_when_done(served, normal)["status"] == "0x1"
    for _ in range(50):
        try:
            served.handle("eth_getTransactionReceipt", ["0x" + bad.hex()])
        except RpcError as exc:
            assert "was dropped: invalid transaction" in exc.message
            assert "S value" in exc.message
            break
    else:
        raise AssertionError("the high-s transaction was not reported as dropped")
    again = ledger.submit(sign_transfer(accounts[0], 0))  # the sender is not stuck
    assert receipt_when_done(served, again)["status"] == "0x1"


def test_served_overdraft_is_refused(served: EmbeddedNode, accounts: list[LocalAccount],
                                     sign_transfer: Any) -> None:
    poor = rich_and_poor(served, accounts, sign_transfer, 2 * FEE + 10**15)
    served.ledger.submit(sign_transfer(poor, 0, value=10**15))
    with pytest.raises(RpcError, match="insufficient funds") as err:
        served.ledger.submit(sign_transfer(poor, 1, value=10**15))
    assert err.value.code == -32003


def test_a_block_that_cannot_be_sealed_drops_its_transactions(
        node: EmbeddedNode, accounts: list[LocalAccount], sign_transfer: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails while a block is sealed, the miner goes on: the block's
    transactions are dropped with the reason, and the next block is mined."""
    seal = _evm.PersistentChain._seal

    def failing_seal(self: Any, vm: Any, header: Any, txs: list[Any], receipts: Any) -> Any:
        if any(tx.value == 777 for tx in txs):
            raise RuntimeError("cannot seal this one")
        return seal(self, vm, header, txs, receipts)

    monkeypatch.setattr(_evm.PersistentChain, "_seal", failing_seal)
    bad = node.ledger.submit(sign_transfer(accounts[0], 0, value=777))
    for _ in range(100):
        try:
            node.handle("eth_getTransactionReceipt", ["0x" + bad.hex()])
        except RpcError as exc:
            assert "was dropped: could not be mined: RuntimeError('cannot seal this one')" in (
                exc.message)
            break
    else:
        raise AssertionError("not dropped")
    good = node.ledger.submit(sign_transfer(accounts[0], 0, value=1))
    assert receipt_when_done(node, good)["status"] == "0x1"


def test_a_replaced_transaction_reports_its_replacement(node: EmbeddedNode,
                                                        accounts: list[LocalAccount]) -> None:
    """Replaced (same nonce, fee 10% higher or more): the old hash says by which."""
    def transfer(fee: int) -> bytes:
        tx = {"to": "0x" + "22" * 20, "value": 1, "nonce": 1, "chainId": CHAIN_ID,
              "gas": 21_000, "maxFeePerGas": fee, "maxPriorityFeePerGas": 10**9}
        return bytes(accounts[2].sign_transaction(tx).raw_transaction)

    old = node.ledger.submit(transfer(10 * 10**9))  # nonce 1: waits for nonce 0
    new = node.ledger.submit(transfer(12 * 10**9))
    with pytest.raises(RpcError, match=f"was dropped: replaced by 0x{new.hex()}"):
        node.handle("eth_getTransactionReceipt", ["0x" + old.hex()])
    assert node.handle("eth_getTransactionByHash", ["0x" + new.hex()])["blockNumber"] is None


def test_served_receipt_of_a_queued_transaction_is_answered_at_once(
        served: EmbeddedNode, accounts: list[LocalAccount], sign_transfer: Any) -> None:
    """The front end knows from its mirror of the pool that a transaction waits
    for an earlier nonce: null at once; once the gap is filled, both are mined."""
    import time

    queued = served.ledger.submit(sign_transfer(accounts[1], 1))
    started = time.monotonic()
    assert served.handle("eth_getTransactionReceipt", ["0x" + queued.hex()]) is None
    assert time.monotonic() - started < 1.0
    first = served.ledger.submit(sign_transfer(accounts[1], 0))
    assert served.ledger.is_executable(queued) or not served.ledger.is_pending(queued)
    assert receipt_when_done(served, first)["status"] == "0x1"
    assert receipt_when_done(served, queued)["status"] == "0x1"
