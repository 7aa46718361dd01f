"""JSON-RPC conformance of the embedded node, seen through web3.py."""
from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound, ContractLogicError, Web3RPCError

from databright.chain.node import EmbeddedNode, Genesis, RpcError


def test_chain_facts(w3: Web3, node: EmbeddedNode, genesis: Genesis,
                     accounts: list[LocalAccount]) -> None:
    assert w3.eth.chain_id == genesis.chain_id
    assert w3.eth.block_number == 0
    assert w3.eth.get_balance(accounts[0].address) == 10**24
    assert w3.eth.accounts == []
    assert w3.eth.syncing is False
    assert w3.net.version == str(genesis.chain_id)
    assert w3.client_version.startswith("databright/")
    genesis_block = w3.eth.get_block("earliest")
    assert genesis_block.number == 0 and genesis_block.transactions == []
    assert w3.eth.get_block("latest").hash == genesis_block.hash
    assert w3.eth.get_block("pending").number == 0
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(5)


def test_deploy_transact_and_read(w3: Web3, counter: Contract,
                                  accounts: list[LocalAccount]) -> None:
    assert counter.functions.count().call() == 5
    assert len(w3.eth.get_code(counter.address)) > 0
    tx_hash = counter.functions.increment(3).transact()
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1
    assert receipt["from"] == accounts[0].address
    assert receipt.to == counter.address
    assert receipt.gasUsed == receipt.cumulativeGasUsed > 21_000
    assert receipt.effectiveGasPrice > 0
    assert receipt.type == 2
    assert receipt.contractAddress is None
    assert counter.functions.count().call() == 8
    # historic reads by block number
    assert counter.functions.count().call(block_identifier=receipt.blockNumber - 1) == 5
    assert int.from_bytes(w3.eth.get_storage_at(counter.address, 0), "big") == 8
    tx = w3.eth.get_transaction(tx_hash)
    assert tx.blockNumber == receipt.blockNumber and tx["from"] == accounts[0].address
    block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert block.transactions[0].hash == tx_hash
    assert w3.eth.get_block(block.hash).number == block.number
    assert w3.eth.get_transaction_count(accounts[0].address) == 2


def test_events_get_logs_and_filters(w3: Web3, counter: Contract,
                                     accounts: list[LocalAccount]) -> None:
    start = w3.eth.block_number
    for amount in (1, 2, 3):
        w3.eth.wait_for_transaction_receipt(counter.functions.increment(amount).transact())
    other = accounts[1].address
    w3.eth.wait_for_transaction_receipt(
        counter.functions.increment(7).transact({"from": other}))
    end = w3.eth.block_number

    events = counter.events.Incremented.get_logs(from_block=start + 1, to_block=end)
    assert [e.args.amount for e in events] == [1, 2, 3, 7]
    assert [e.args.total for e in events] == [6, 8, 11, 18]
    assert events[-1].args.by == other
    only_other = counter.events.Incremented.get_logs(
        from_block=0, argument_filters={"by": other})
    assert [e.args.amount for e in only_other] == [7]
    event_filter = counter.events.Incremented.create_filter(
        from_block=start + 2, to_block=start + 3)
    assert [e.args.amount for e in event_filter.get_all_entries()] == [2, 3]

    # raw topics: OR-lists and null wildcards
    raw = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": counter.address})
    topic0 = raw[0]["topics"][0]
    two_or_seven = [Web3.to_bytes(n).rjust(32, b"\0") for n in (2, 7)]
    picked = w3.eth.get_logs({"fromBlock": 0, "address": [counter.address],
                              "topics": [topic0, None, [Web3.to_hex(t) for t in two_or_seven]]})
    assert [int.from_bytes(log["topics"][2], "big") for log in picked] == [2, 7]
    by_hash = w3.eth.get_logs({"blockHash": raw[1]["blockHash"]})
    assert by_hash == [raw[1]]
    assert all(log["logIndex"] == 0 and log["transactionIndex"] == 0 for log in raw)


def test_revert_reason_reaches_web3(w3: Web3, counter: Contract) -> None:
    with pytest.raises(ContractLogicError, match="counter: zero amount"):
        counter.functions.increment(0).call()
    with pytest.raises(ContractLogicError, match="counter: zero amount"):
        counter.functions.increment(0).estimate_gas()
    with pytest.raises(ContractLogicError, match="counter: zero amount"):
        counter.functions.increment(0).transact()  # web3 estimates gas first


def test_reverting_transaction_is_mined_with_status_zero(
        w3: Web3, counter: Contract, accounts: list[LocalAccount]) -> None:
    tx_hash = counter.functions.increment(0).transact({"gas": 100_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 0
    assert receipt.logs == []
    assert counter.functions.count().call() == 5


def test_estimate_gas_is_enough_and_tight(w3: Web3, counter: Contract) -> None:
    estimate = counter.functions.increment(1).estimate_gas()
    receipt = w3.eth.wait_for_transaction_receipt(
        counter.functions.increment(1).transact({"gas": estimate}))
    assert receipt.status == 1
    assert receipt.gasUsed <= estimate < receipt.gasUsed * 1.3


def test_fee_apis(w3: Web3, counter: Contract) -> None:
    base_fee = w3.eth.get_block("latest").baseFeePerGas
    assert w3.eth.gas_price > base_fee
    assert w3.eth.max_priority_fee > 0
    history = w3.eth.fee_history(3, "latest", [10, 50, 90])
    assert len(history.baseFeePerGas) == len(history.gasUsedRatio) + 1
    assert len(history.reward) == len(history.gasUsedRatio)
    assert all(0 <= r <= 1 for r in history.gasUsedRatio)


def test_pending_nonce_counts_pool(node: EmbeddedNode, accounts: list[LocalAccount],
                                  sign_transfer: Any) -> None:
    sender = accounts[0]
    # a gap: nonce 1 waits in the pool until nonce 0 arrives
    node.handle("eth_sendRawTransaction", ["0x" + sign_transfer(sender, 1).hex()])
    assert node.handle("eth_getTransactionCount", [sender.address, "pending"]) == "0x0"
    hashes = [node.handle("eth_sendRawTransaction", ["0x" + sign_transfer(sender, n).hex()])
              for n in (0, 2)]
    for h in hashes:
        assert node.handle("eth_getTransactionReceipt", [h])["status"] == "0x1"
    assert node.handle("eth_getTransactionCount", [sender.address, "latest"]) == "0x3"
    assert node.handle("eth_getTransactionCount", [sender.address, "pending"]) == "0x3"


def test_pending_nonce_while_miner_is_busy(node: EmbeddedNode, accounts: list[LocalAccount],
                                           sign_transfer: Any) -> None:
    sender = accounts[1]
    with node.ledger._lock:  # hold the miner so the pool is observable
        for n in range(3):
            node.ledger.submit(sign_transfer(sender, n))
        assert node.handle("eth_getTransactionCount", [sender.address, "pending"]) == "0x3"
        assert node.handle("eth_getTransactionCount", [sender.address, "latest"]) == "0x0"


def test_many_transactions_share_a_block(node: EmbeddedNode, accounts: list[LocalAccount],
                                         sign_transfer: Any) -> None:
    with node.ledger._lock:  # everything arrives while the miner waits
        hashes = [node.ledger.submit(sign_transfer(a, n)) for n in range(20) for a in accounts]
    receipts = [node.handle("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in hashes]
    assert {r["blockNumber"] for r in receipts} == {"0x1"}
    assert sorted(int(r["transactionIndex"], 16) for r in receipts) == list(range(60))
    block = node.handle("eth_getBlockByNumber", ["0x1", False])
    assert len(block["transactions"]) == 60
    assert int(block["gasUsed"], 16) == 60 * 21_000


@pytest.mark.parametrize(("make", "message"), [
    (lambda a, s: s(a, 0, chain_id=1), "chain id"),
    (lambda a, s: s(a, 0, value=10**30), "insufficient funds"),
])
def test_invalid_transactions_are_rejected(node: EmbeddedNode, accounts: list[LocalAccount],
                                           sign_transfer: Any, make: Any, message: str) -> None:
    with pytest.raises(RpcError, match=message) as info:
        node.handle("eth_sendRawTransaction", ["0x" + make(accounts[0], sign_transfer).hex()])
    assert info.value.code in (-32000, -32003)


def test_nonce_too_low_and_intrinsic_gas(w3: Web3, node: EmbeddedNode,
                                         accounts: list[LocalAccount],
                                         sign_transfer: Any) -> None:
    raw = sign_transfer(accounts[0], 0)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    with pytest.raises(Web3RPCError, match="nonce too low"):
        w3.eth.send_raw_transaction(sign_transfer(accounts[0], 0, value=2))
    low_gas = accounts[0].sign_transaction({
        "to": accounts[1].address, "value": 1, "nonce": 1, "chainId": w3.eth.chain_id,
        "gas": 20_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}).raw_transaction
    with pytest.raises(Web3RPCError, match="intrinsic gas too low"):
        w3.eth.send_raw_transaction(low_gas)


def test_time_controls(w3: Web3, counter: Contract) -> None:
    now = w3.eth.get_block("latest").timestamp
    assert counter.functions.is_after(now + 3600).call() is False
    w3.provider.make_request("evm_increaseTime", [7200])
    # a call runs in the block it names: only the next one has the new time
    assert counter.functions.is_after(now + 3600).call() is False
    assert counter.functions.is_after(now + 3600).call(block_identifier="pending") is True
    w3.provider.make_request("evm_mine", [])
    assert w3.eth.get_block("latest").timestamp >= now + 7200
    target = w3.eth.get_block("latest").timestamp + 100_000
    w3.provider.make_request("evm_setNextBlockTimestamp", [target])
    w3.provider.make_request("evm_mine", [])
    assert w3.eth.get_block("latest").timestamp == target
    receipt = w3.eth.wait_for_transaction_receipt(counter.functions.increment(1).transact())
    assert w3.eth.get_block(receipt.blockNumber).timestamp > target


def test_contract_address_in_receipt(w3: Web3, counter_artifact: Any) -> None:
    factory = w3.eth.contract(abi=counter_artifact.abi, bytecode=counter_artifact.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(1).transact())
    assert receipt.contractAddress is not None
    assert w3.eth.contract(address=receipt.contractAddress,
                           abi=counter_artifact.abi).functions.count().call() == 1
