"""Dispatcher answers that must be what anvil (and geth) answer, found by the conformance suite."""
from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from databright.chain.node import EmbeddedNode, RpcError

from .conftest import CHAIN_ID

HEAVY = b"\xff" * 1000 + b"\x00" * 100  # 4100 calldata tokens


def test_estimate_covers_the_calldata_floor(w3: Web3, accounts: list[LocalAccount]) -> None:
    """EIP-7623 (Prague): calldata-heavy transactions pay 21000 + 10 per token at least."""
    call = {"from": accounts[0].address, "to": accounts[1].address, "data": "0x" + HEAVY.hex()}
    estimate = w3.eth.estimate_gas(call)  # type: ignore[arg-type]
    assert estimate == 21_000 + 10 * 4100 == 62_000
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({**call, "gas": estimate}))  # type: ignore[arg-type]
    assert receipt.status == 1 and receipt.gasUsed == estimate


def _send(node: EmbeddedNode, account: LocalAccount, nonce: int, tip: int, value: int = 1) -> str:
    raw = account.sign_transaction({"to": "0x" + "22" * 20, "value": value, "nonce": nonce, "chainId": CHAIN_ID,
                                    "gas": 21_000, "maxFeePerGas": 10 * 10**9,
                                    "maxPriorityFeePerGas": tip}).raw_transaction
    return str(node.handle("eth_sendRawTransaction", ["0x" + bytes(raw).hex()]))


def test_suggested_tip_follows_the_latest_block(w3: Web3, node: EmbeddedNode,
                                                accounts: list[LocalAccount]) -> None:
    """anvil suggests the lowest tip of the latest block, at least 1 gwei."""
    assert int(node.handle("eth_maxPriorityFeePerGas"), 16) == 10**9
    w3.eth.wait_for_transaction_receipt(_send(node, accounts[0], 0, 3 * 10**9))
    assert int(node.handle("eth_maxPriorityFeePerGas"), 16) == 3 * 10**9
    assert int(node.handle("eth_gasPrice"), 16) == node.ledger.next_base_fee() + 3 * 10**9
    w3.eth.wait_for_transaction_receipt(_send(node, accounts[0], 1, 1))  # tip of 1 wei
    assert int(node.handle("eth_maxPriorityFeePerGas"), 16) == 10**9


def test_replacement_underpriced_code(node: EmbeddedNode, accounts: list[LocalAccount]) -> None:
    """anvil refuses an underpriced replacement with -32003, as it does nonce and funds errors."""
    _send(node, accounts[0], 1, 10**9)  # a nonce gap keeps it pooled
    with pytest.raises(RpcError, match="underpriced") as info:
        _send(node, accounts[0], 1, 10**9, value=2)
    assert info.value.code == -32003


def test_logs_and_transactions_carry_the_block_timestamp(w3: Web3, counter: Any) -> None:
    """anvil puts blockTimestamp on every log and mined transaction (geth 1.16+ on logs)."""
    receipt = w3.eth.wait_for_transaction_receipt(counter.functions.increment(1).transact())
    stamp = w3.eth.get_block(receipt.blockNumber).timestamp
    logs = w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber})
    assert logs and all(int(log["blockTimestamp"], 16) == stamp for log in logs)  # type: ignore[typeddict-item]
    assert all(int(log["blockTimestamp"], 16) == stamp for log in receipt.logs)  # type: ignore[typeddict-item]
    assert int(w3.eth.get_transaction(receipt.transactionHash)["blockTimestamp"], 16) == stamp  # type: ignore[typeddict-item]


def test_fill_transaction(w3: Web3, node: EmbeddedNode, accounts: list[LocalAccount]) -> None:
    """geth's eth_fillTransaction (viem calls it before each send): nonce, gas and
    fees filled in; signing what it returns gives a transaction the node mines."""
    import rlp

    sender = accounts[0]
    call = {"from": sender.address, "to": accounts[1].address, "value": hex(5)}
    filled = node.handle("eth_fillTransaction", [call])
    tx = filled["tx"]
    head_fee = w3.eth.get_block("latest").baseFeePerGas
    assert (tx["type"], tx["nonce"], tx["gas"], tx["chainId"]) == ("0x2", "0x0", hex(21_000), hex(CHAIN_ID))
    assert int(tx["maxPriorityFeePerGas"], 16) == 10**9
    assert int(tx["maxFeePerGas"], 16) == 10**9 + 2 * head_fee
    raw = bytes.fromhex(filled["raw"][2:])
    assert raw[0] == 2 and rlp.decode(raw[1:])[-3:] == [b"", b"", b""]  # unsigned
    signed = sender.sign_transaction({
        "type": 2, "chainId": CHAIN_ID, "nonce": 0, "to": tx["to"], "value": 5, "gas": 21_000,
        "maxFeePerGas": int(tx["maxFeePerGas"], 16), "maxPriorityFeePerGas": 10**9})
    assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction)).status == 1
    legacy = node.handle("eth_fillTransaction", [{**call, "gasPrice": hex(3 * 10**9), "nonce": "0x7"}])["tx"]
    assert (legacy["type"], legacy["nonce"], legacy["gasPrice"]) == ("0x0", "0x7", hex(3 * 10**9))
    with pytest.raises(RpcError) as info:
        node.handle("eth_fillTransaction", [{**call, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}])
    assert info.value.code in (-32000, -32602)  # geth: -32000 from its estimate
