"""EIP-1186 ``eth_getProof``: Merkle proofs of an account and its storage slots.

The proofs are the RLP-encoded trie nodes on the path from the block's state
root to the account (keyed by ``keccak(address)``) and from the account's storage
root to each slot (keyed by ``keccak(slot)``), read from the same trie nodes the
chain stores. A node shorter than 32 bytes is embedded in its parent, so it is
not listed separately, as in geth.
"""
from __future__ import annotations

from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.abc import DatabaseAPI
from eth_hash.auto import keccak
from trie.hexary import HexaryTrie

from ._codec import checksum, hb, hx

__all__ = ["account_proof"]


def _proof(trie: HexaryTrie, key: bytes) -> list[str]:
    path: Any = trie.get_proof  # untyped in py-trie
    nodes = [rlp.encode(node) for node in path(key)]
    return [hb(node) for i, node in enumerate(nodes) if i == 0 or len(node) >= 32]


def account_proof(db: DatabaseAPI, state_root: bytes, address: bytes,
                  slots: list[tuple[str, int]]) -> dict[str, Any]:
    """The proof object for ``address`` and ``slots`` (each as given, and as a number)."""
    state = HexaryTrie(db, state_root)
    key = keccak(address)
    encoded = state.get(key)
    if encoded:
        nonce, balance, storage_root, code_hash = rlp.decode(encoded)
        nonce, balance = int.from_bytes(nonce, "big"), int.from_bytes(balance, "big")
    else:  # no such account: the proof shows the path ends without it
        nonce, balance, storage_root, code_hash = 0, 0, BLANK_ROOT_HASH, EMPTY_SHA3
    storage = HexaryTrie(db, storage_root)
    storage_proof = []
    for given, slot in slots:
        slot_key = keccak(slot.to_bytes(32, "big"))
        raw = storage.get(slot_key)
        value = int.from_bytes(rlp.decode(raw), "big") if raw else 0
        storage_proof.append({"key": given, "value": hx(value),
                              "proof": _proof(storage, slot_key)})
    return {
        "address": checksum(address),
        "accountProof": _proof(state, key),
        "balance": hx(balance),
        "codeHash": hb(code_hash),
        "nonce": hx(nonce),
        "storageHash": hb(storage_root),
        "storageProof": storage_proof,
    }
