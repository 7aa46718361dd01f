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


def test_logs_carry_the_block_timestamp(w3: Web3, counter: Any) -> None:
    """geth (1.16+) and anvil put blockTimestamp on every log."""
    receipt = w3.eth.wait_for_transaction_receipt(counter.functions.increment(1).transact())
    stamp = w3.eth.get_block(receipt.blockNumber).timestamp
    logs = w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber})
    assert logs and all(int(log["blockTimestamp"], 16) == stamp for log in logs)  # type: ignore[typeddict-item]
    assert all(int(log["blockTimestamp"], 16) == stamp for log in receipt.logs)  # type: ignore[typeddict-item]
