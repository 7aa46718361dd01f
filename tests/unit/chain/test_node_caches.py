"""The miner's shortcuts must not change what the chain computes or accepts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rlp
from eth.chains.base import Chain
from eth.db.atomic import AtomicDB
from eth.vm.forks.prague import PragueVM
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.chain import _codec
from databright.chain.node import EmbeddedNode, Genesis, RpcError


def test_decoded_trie_nodes_are_copies() -> None:
    node = [b"\x01" * 32] * 16 + [[b"\x20", b"\x05"]]
    encoded = rlp.encode(node)
    first = _codec._cached_decode_node(encoded)
    assert isinstance(first, list)
    first[0] = b"changed"
    first[16][1] = b"changed"
    assert _codec._cached_decode_node(encoded) == node


def test_balance_paid_to_a_cached_account_is_seen(node: EmbeddedNode,
                                                  accounts: list[LocalAccount],
                                                  sign_transfer: Any) -> None:
    """An account cached as poor (it sent a transaction) is refreshed when paid."""
    poor = Account.from_key(b"\x42" * 32)
    fee = 21_000 * 10 * 10**9
    funded = sign_transfer(accounts[0], 0, to=poor.address, value=fee + 1)
    node.handle("eth_getTransactionReceipt", ["0x" + node.ledger.submit(funded).hex()])
    spent = node.ledger.submit(sign_transfer(poor, 0, value=1))
    assert node.handle("eth_getTransactionReceipt", ["0x" + spent.hex()])["status"] == "0x1"
    with pytest.raises(RpcError, match="insufficient funds"):
        node.ledger.submit(sign_transfer(poor, 1, value=1))
    paid = node.ledger.submit(sign_transfer(accounts[1], 0, to=poor.address, value=10**18))
    node.handle("eth_getTransactionReceipt", ["0x" + paid.hex()])
    touched = node.ledger._touched  # the block's diff was read, not the forget-all fallback
    assert touched is not None and bytes.fromhex(poor.address[2:]) in touched
    again = node.ledger.submit(sign_transfer(poor, 1, value=10**17))
    assert node.handle("eth_getTransactionReceipt", ["0x" + again.hex()])["status"] == "0x1"
    assert int(node.handle("eth_getBalance", [poor.address]), 16) > 10**18 - 10**17 - fee


def test_state_roots_replay_in_plain_py_evm(tmp_path: Path, genesis: Genesis,
                                            accounts: list[LocalAccount],
                                            sign_transfer: Any) -> None:
    """Blocks mined with the node's shortcuts import into a plain py-evm chain."""
    with EmbeddedNode(tmp_path / "chain.sqlite", genesis) as node:
        for n in range(3):
            with node.ledger._lock:  # several transactions per block, then one
                hashes = [node.ledger.submit(sign_transfer(a, n)) for a in accounts[: 3 - n]]
            for h in hashes:
                node.handle("eth_getTransactionReceipt", ["0x" + h.hex()])
        head = node.ledger.head().block_number
        blocks = [node.ledger._reader().get_canonical_block_by_number(i)
                  for i in range(1, head + 1)]
    chain_class = type("Replay", (Chain,), {"vm_configuration": ((0, PragueVM),),
                                            "chain_id": genesis.chain_id})
    replay = chain_class.from_genesis(AtomicDB(), node.ledger._genesis_params(), {
        bytes.fromhex(a[2:]): {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
        for a, wei in genesis.alloc.items()
    })
    for block in blocks:
        imported = replay.import_block(block)  # re-executes and validates every root
        assert imported.imported_block.header.state_root == block.header.state_root
