"""Block, transaction and uncle lookups, proofs, filters, logs ranges, and the
rule that nothing a client sends is answered with -32603 "internal error"."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import rlp
from eth_account.signers.local import LocalAccount
from trie.hexary import HexaryTrie
from web3 import Web3
from web3.contract import Contract

from databright.chain.node import EmbeddedNode, RpcError


def _error(node: EmbeddedNode, method: str, params: list[Any]) -> RpcError:
    with pytest.raises(RpcError) as err:
        node.handle(method, params)
    return err.value


def test_logs_beyond_the_head_or_reversed_are_errors(w3: Web3, node: EmbeddedNode,
                                                     counter: Contract) -> None:
    """geth's answers (execution-apis tests/eth_getLogs): an indexer polling ahead
    gets an error, not the head's logs again."""
    receipt = w3.eth.wait_for_transaction_receipt(counter.functions.increment(2).transact())
    head = receipt.blockNumber
    assert len(node.handle("eth_getLogs", [{"fromBlock": hex(head), "toBlock": hex(head)}])) == 1
    beyond = _error(node, "eth_getLogs", [{"fromBlock": hex(head + 1), "toBlock": hex(head + 3)}])
    assert (beyond.code, beyond.message) == (-32602, "block range extends beyond current head block")
    ahead = _error(node, "eth_getLogs", [{"fromBlock": hex(head), "toBlock": hex(head + 1)}])
    assert ahead.message == "block range extends beyond current head block"
    for criteria in ({"fromBlock": hex(head), "toBlock": hex(head - 1)},
                     {"fromBlock": hex(head + 1), "toBlock": "latest"}):
        reversed_ = _error(node, "eth_getLogs", [criteria])
        assert (reversed_.code, reversed_.message) == (-32602, "invalid block range params")
    both = _error(node, "eth_getLogs", [{"blockHash": receipt.blockHash.to_0x_hex(),
                                         "fromBlock": "0x1"}])
    assert both.code == -32602
    # a filter may look ahead: its logs arrive as blocks are mined
    ahead_filter = node.handle("eth_newFilter", [{"fromBlock": hex(head + 1),
                                                  "toBlock": hex(head + 10)}])
    w3.eth.wait_for_transaction_receipt(counter.functions.increment(3).transact())
    changes = node.handle("eth_getFilterChanges", [ahead_filter])
    assert [int(log["blockNumber"], 16) for log in changes] == [head + 1]


def test_receipt_of_a_queued_transaction_is_answered_at_once(
        node: EmbeddedNode, accounts: list[LocalAccount], sign_transfer: Any) -> None:
    queued = node.ledger.submit(sign_transfer(accounts[1], 3))  # nonces 0-2 missing
    started = time.monotonic()
    assert node.handle("eth_getTransactionReceipt", ["0x" + queued.hex()]) is None
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt",
              "params": ["0x" + queued.hex()]} for i in range(3)]
    replies = json.loads(node.dispatcher.handle_bytes(json.dumps(batch).encode()) or b"")
    assert [r["result"] for r in replies] == [None] * 3
    assert time.monotonic() - started < 1.0  # was 2 s per query
    assert node.handle("eth_getTransactionByHash", ["0x" + queued.hex()])["blockNumber"] is None


def test_transactions_by_block_and_index(w3: Web3, node: EmbeddedNode,
                                         counter: Contract) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(counter.functions.increment(1).transact())
    number, block_hash = hex(receipt.blockNumber), receipt.blockHash.to_0x_hex()
    tx = node.handle("eth_getTransactionByHash", [receipt.transactionHash.to_0x_hex()])
    assert node.handle("eth_getTransactionByBlockNumberAndIndex", [number, "0x0"]) == tx
    assert node.handle("eth_getTransactionByBlockHashAndIndex", [block_hash, "0x0"]) == tx
    assert node.handle("eth_getTransactionByBlockNumberAndIndex", [number, "0x1"]) is None
    assert node.handle("eth_getTransactionByBlockNumberAndIndex", ["0x99", "0x0"]) is None
    assert node.handle("eth_getTransactionByBlockHashAndIndex", ["0x" + "00" * 32, "0x0"]) is None
    assert node.handle("eth_getBlockTransactionCountByHash", [block_hash]) == "0x1"
    assert node.handle("eth_getBlockTransactionCountByHash", ["0x" + "00" * 32]) is None
    assert node.handle("eth_getUncleCountByBlockNumber", [number]) == "0x0"
    assert node.handle("eth_getUncleCountByBlockHash", [block_hash]) == "0x0"
    assert node.handle("eth_getUncleCountByBlockNumber", ["0x99"]) is None
    assert node.handle("eth_getUncleByBlockNumberAndIndex", [number, "0x0"]) is None
    assert node.handle("eth_getUncleByBlockHashAndIndex", [block_hash, "0x0"]) is None


def _proven(root: bytes, key: bytes, proof: list[str]) -> bytes:
    nodes = [rlp.decode(bytes.fromhex(p[2:])) for p in proof]
    return bytes(HexaryTrie.get_from_proof(root, key, nodes))


def test_get_proof_verifies_against_the_state_root(w3: Web3, node: EmbeddedNode,
                                                   counter: Contract,
                                                   accounts: list[LocalAccount]) -> None:
    """EIP-1186: each proof leads from the block's stateRoot to the account, and
    from its storageHash to the slot, through nodes whose hashes link up."""
    first = w3.eth.get_block("latest")
    w3.eth.wait_for_transaction_receipt(counter.functions.increment(4).transact())
    for block in (w3.eth.get_block("latest"), first):
        root = bytes(block.stateRoot)
        for address in (counter.address, accounts[0].address, "0x" + "5a" * 20):
            proof = node.handle("eth_getProof", [address, ["0x0", "0x" + "01" * 32],
                                                 hex(block.number)])
            key = Web3.keccak(hexstr=address)
            account = _proven(root, key, proof["accountProof"])
            if address == "0x" + "5a" * 20:
                assert account == b"" and proof["balance"] == "0x0"
                continue
            nonce, balance, storage_root, code_hash = rlp.decode(account)
            assert int.from_bytes(balance, "big") == int(proof["balance"], 16) == (
                w3.eth.get_balance(address, block.number))
            assert int.from_bytes(nonce, "big") == int(proof["nonce"], 16)
            assert proof["storageHash"] == "0x" + storage_root.hex()
            assert proof["codeHash"] == Web3.keccak(w3.eth.get_code(address, block.number)).to_0x_hex()
            slot0 = proof["storageProof"][0]
            assert slot0["key"] == "0x0"
            stored = _proven(storage_root, Web3.keccak(b"\0" * 32), slot0["proof"])
            value = int.from_bytes(rlp.decode(stored), "big") if stored else 0
            assert value == int(slot0["value"], 16) == int.from_bytes(
                w3.eth.get_storage_at(address, 0, block.number), "big")
    assert int(node.handle("eth_getProof", [counter.address, ["0x0"]])["storageProof"][0][
        "value"], 16) == counter.functions.count().call()


def test_pending_transaction_filter(node: EmbeddedNode, accounts: list[LocalAccount],
                                    sign_transfer: Any) -> None:
    pending = node.handle("eth_newPendingTransactionFilter", [])
    sent = [node.ledger.submit(sign_transfer(accounts[0], n)) for n in range(2)]
    assert node.handle("eth_getFilterChanges", [pending]) == ["0x" + h.hex() for h in sent]
    assert node.handle("eth_getFilterChanges", [pending]) == []


def test_sha3_and_coinbase(node: EmbeddedNode) -> None:
    # the JSON-RPC specification's example: keccak-256 of "hello world"
    assert node.handle("web3_sha3", ["0x68656c6c6f20776f726c64"]) == (
        "0x47173285a8d7341e5e972fc677286384f802f8ef42a5ec5f03bbfa254cb01fad")
    assert node.handle("eth_coinbase", []) == node.handle("eth_getBlockByNumber",
                                                          ["latest", False])["miner"]


_JUNK: list[Any] = [None, True, -1, 2**300, "", "0x", "0xzz", "0x-1", "latest", "0x" + "ff" * 40,
                    [], {}, {"to": "0x12"}, {"fromBlock": "0x-5"}, [1, 2], {"blockHash": 7}]


def test_no_client_input_is_an_internal_error(node: EmbeddedNode) -> None:
    """Every method, fed junk in each position: a clear error, never -32603."""
    for method in sorted(node.dispatcher.methods):
        if method in ("evm_mine", "evm_increaseTime", "evm_setNextBlockTimestamp"):
            continue  # they move the dev chain; their parsing is shared with the rest
        for arity in (1, 2, 3):
            for junk in _JUNK:
                params = [junk] * arity
                reply = node.dispatcher.handle_request(
                    {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                assert reply is not None
                error = reply.get("error")
                assert error is None or error["code"] != -32603, (method, params, error)
