"""The conformance sequence as a web3.py application runs it.

The last steps are the ones that today can stop our miner (pipelined sends above
the balance, a high-s signature), followed by a check that blocks are still mined.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.constants import SECPK1_N
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from tests.conformance._harness import CHAIN_ID, probe_artifact

STEPS = [
    "chain", "deploy", "transact", "batch", "feesFollowTips", "events", "callPast", "contextLatest", "storageSlotTooLarge",
    "estimateBelowIntrinsic", "callOverBalance", "revertString", "revertCustom", "rawGarbage",
    "queuedReceipt", "byBlockAndIndex", "uncles", "proof", "pipelinedOverBalance", "highS", "stillMines",
]
FEES = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": CHAIN_ID}


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        return {"rpcCode": exc.rpc_response.get("error", {}).get("code")}
    if isinstance(exc, ContractCustomError):
        return {"custom": exc.data}
    if isinstance(exc, ContractLogicError):
        return {"revert": exc.message, "data": exc.data}
    return {"error": type(exc).__name__}


def _raw(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in response:
        return {"rpcCode": response["error"]["code"]}
    return {"result": response.get("result")}


def _receipt_view(receipt: Any) -> dict[str, Any]:
    return {k: receipt[k] for k in ("transactionHash", "status", "type", "blockNumber", "gasUsed",
                                    "cumulativeGasUsed", "effectiveGasPrice", "contractAddress", "logs")}


def _send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    tx = {"nonce": w3.eth.get_transaction_count(account.address, "pending"), "gas": 300_000, **FEES, **tx}
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.02)


def _high_s(account: LocalAccount, tx: dict[str, Any]) -> bytes:
    """The same EIP-1559 transaction signed with s flipped to the high half (n - s)
    and the parity flipped with it: the same sender still recovers."""
    raw = bytes(account.sign_transaction(tx).raw_transaction)
    fields = rlp.decode(raw[1:])
    s = int.from_bytes(fields[-1], "big")
    fields[-3] = b"" if fields[-3] == b"\x01" else b"\x01"
    fields[-1] = (SECPK1_N - s).to_bytes(32, "big")
    return raw[:1] + rlp.encode(fields)


def run(url: str, keys: list[str]) -> dict[str, Any]:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    alice, bob = (Account.from_key(k) for k in keys[:2])
    artifact = probe_artifact()
    out: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> None:
        try:
            out[name] = json.loads(Web3.to_json(fn()))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the refusal is what is compared
            out[name] = {"threw": _error(exc)}

    step("chain", lambda: {"id": w3.eth.chain_id, "head": w3.eth.block_number,
                           "gasPrice": w3.eth.gas_price, "priority": w3.eth.max_priority_fee})
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deployed = _send(w3, alice, {"data": factory.constructor(7).build_transaction({"from": alice.address, "gas": 1})["data"],
                                 "gas": 1_000_000})
    out["deploy"] = json.loads(Web3.to_json(_receipt_view(deployed)))  # type: ignore[arg-type]
    probe = w3.eth.contract(address=deployed.contractAddress, abi=artifact["abi"])

    def transact() -> Any:
        receipt = _send(w3, alice, {"to": probe.address, "data": probe.encode_abi("store", [1, 11])})
        events = probe.events.Stored().process_receipt(receipt)
        return {"receipt": _receipt_view(receipt), "events": [dict(e.args) for e in events]}

    step("transact", transact)

    def batch() -> Any:
        with w3.batch_requests() as b:
            b.add(w3.eth.get_block_number())
            b.add(w3.eth.get_balance(bob.address))
            b.add(w3.eth.get_transaction_count(alice.address))
            return b.execute()

    step("batch", batch)

    def fees_follow_tips() -> Any:
        receipt = _send(w3, bob, {"to": alice.address, "value": 1, "gas": 21_000, "maxPriorityFeePerGas": 3 * 10**9})
        return {"status": receipt.status, "gasPrice": w3.eth.gas_price, "priority": w3.eth.max_priority_fee}

    step("feesFollowTips", fees_follow_tips)
    step("events", lambda: [dict(e.args) for e in probe.events.Stored().get_logs(from_block=0)])
    step("callPast", lambda: [probe.functions.total().call(block_identifier=n) for n in (2, 3, "latest")])

    def context() -> Any:
        head = w3.eth.get_block("latest")
        number, timestamp, basefee, *_ = probe.functions.context().call(block_identifier=head.number)
        return {"numberIsBlock": number == head.number, "timeIsBlock": timestamp == head.timestamp,
                "basefeeIsBlock": basefee == head.baseFeePerGas, "basefee": basefee}

    step("contextLatest", context)
    step("storageSlotTooLarge", lambda: _raw(w3, "eth_getStorageAt", [probe.address, hex(2**256), "latest"]))
    step("estimateBelowIntrinsic", lambda: _raw(w3, "eth_estimateGas", [
        {"from": alice.address, "to": bob.address, "value": "0x1", "gas": hex(20_000)}]))
    step("callOverBalance", lambda: _raw(w3, "eth_call", [
        {"from": bob.address, "to": alice.address, "value": hex(10**40)}, "latest"]))
    step("revertString", lambda: probe.functions.fail("boom").call())
    step("revertCustom", lambda: probe.functions.refuse(5).call({"from": alice.address}))
    step("rawGarbage", lambda: [_raw(w3, "eth_sendRawTransaction", [d]) for d in ("0x1234", "0x", "0x02")])

    def queued_receipt() -> Any:
        # A nonce gap keeps it pooled: the answer is null, and at once.
        nonce = w3.eth.get_transaction_count(bob.address)
        raw = bob.sign_transaction({"to": alice.address, "value": 1, "nonce": nonce + 1, "gas": 21_000, **FEES})
        tx_hash = w3.eth.send_raw_transaction(raw.raw_transaction)
        started = time.monotonic()
        receipt = _raw(w3, "eth_getTransactionReceipt", [tx_hash.to_0x_hex()])
        fast = time.monotonic() - started < 0.5
        gap = bob.sign_transaction({"to": alice.address, "value": 1, "nonce": nonce, "gas": 21_000, **FEES})
        w3.eth.send_raw_transaction(gap.raw_transaction)
        mined = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.02)
        return {"receipt": receipt, "fast": fast, "minedStatus": mined.status}

    step("queuedReceipt", queued_receipt)
    step("byBlockAndIndex", lambda: [_raw(w3, "eth_getTransactionByBlockNumberAndIndex", ["0x2", "0x0"]),
                                     _raw(w3, "eth_getBlockTransactionCountByHash", ["0x" + "00" * 32])])
    step("uncles", lambda: [_raw(w3, "eth_getUncleCountByBlockNumber", ["0x1"]),
                            _raw(w3, "eth_getUncleByBlockNumberAndIndex", ["0x1", "0x0"])])

    def proof() -> Any:
        p = w3.eth.get_proof(probe.address, ["0x" + "00" * 32], "latest")  # type: ignore[list-item]
        return {"balance": p.balance, "nonce": p.nonce, "storageHash": p.storageHash,
                "storage": [(s.key, s.value) for s in p.storageProof]}

    step("proof", proof)

    def pipelined_over_balance() -> Any:
        # A fresh sender that can afford either of two transfers, not both; sent
        # back to back without waiting. anvil refuses the second (-32003).
        carol = Account.from_key("0x" + "c0" * 32)
        _send(w3, alice, {"to": carol.address, "value": 10**16, "gas": 21_000})
        each = {"to": bob.address, "value": 6 * 10**15, "gas": 21_000, **FEES}
        first = w3.eth.send_raw_transaction(carol.sign_transaction({**each, "nonce": 0}).raw_transaction)
        try:
            w3.eth.send_raw_transaction(carol.sign_transaction({**each, "nonce": 1}).raw_transaction)
            second: Any = "accepted"
        except Web3RPCError as exc:
            second = _error(exc)
        mined = w3.eth.wait_for_transaction_receipt(first, timeout=15, poll_latency=0.02)
        return {"first": mined.status, "second": second}

    step("pipelinedOverBalance", pipelined_over_balance)

    def high_s() -> Any:
        tx = {"to": bob.address, "value": 1, "gas": 21_000,
              "nonce": w3.eth.get_transaction_count(alice.address, "pending"), **FEES}
        tx_hash = w3.eth.send_raw_transaction(_high_s(alice, tx))
        return {"status": w3.eth.wait_for_transaction_receipt(tx_hash, timeout=15, poll_latency=0.02).status}

    step("highS", high_s)
    step("stillMines", lambda: _send(w3, bob, {"to": alice.address, "value": 1, "gas": 21_000}).status)
    return out
