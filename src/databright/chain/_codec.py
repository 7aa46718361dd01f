"""Encodings for the chain: JSON-RPC shapes of blocks and transactions, and tries.

Also installs a decode cache for ``trie``'s hexary nodes (see ``_cached_decode_node``).
"""
from __future__ import annotations

import functools
from typing import Any, cast

import rlp
import trie.hexary
from eth.abc import BlockHeaderAPI, LegacyTransactionFieldsAPI, SignedTransactionAPI
from eth.constants import BLANK_ROOT_HASH
from eth_hash.auto import keccak
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from trie.utils.nodes import decode_node as _decode_node

__all__ = ["base_fee", "checksum", "effective_price", "hb", "header_json", "hx", "trie_root_and_nodes",
           "tx_json"]

_NODE_CACHE: dict[bytes, bytes | list[Any]] = {}
_NODE_CACHE_LIMIT = 100_000


def _copy_node(node: list[Any]) -> list[Any]:
    return [_copy_node(item) if item.__class__ is list else item for item in node]


def _cached_decode_node(encoded: bytes | list[Any]) -> bytes | list[Any]:
    """``trie``'s ``decode_node`` with a cache keyed by the node's encoding.

    Every block opens a fresh py-evm state whose tries decode the same upper nodes
    again with the pure-Python rlp codec; decoding is a pure function of the
    bytes, so cache it (keyed by content, the cache can never be stale). The trie
    edits decoded nodes in place, so callers get copies.
    """
    if not isinstance(encoded, bytes) or len(encoded) < 32:
        return _decode_node(encoded)
    node = _NODE_CACHE.get(encoded)
    if node is None:
        node = _decode_node(encoded)
        if len(_NODE_CACHE) >= _NODE_CACHE_LIMIT:
            _NODE_CACHE.clear()
        _NODE_CACHE[encoded] = node
    return _copy_node(node) if isinstance(node, list) else node


setattr(trie.hexary, "decode_node", _cached_decode_node)  # noqa: B010 - hexary's own lookup


@functools.lru_cache(maxsize=65_536)
def checksum(address: bytes) -> str:
    """EIP-55 spelling of an address (a keccak each time, hence the cache)."""
    return to_checksum_address(address)


def base_fee(header: BlockHeaderAPI) -> int:
    """The header's base fee; every block of this chain (London and later) has one."""
    return cast(int, header.base_fee_per_gas)


def legacy_v(tx: SignedTransactionAPI) -> int:
    """``v`` of a legacy (type 0) transaction, where the chain id is folded in."""
    return cast(LegacyTransactionFieldsAPI, tx).v


def hx(value: int) -> str:
    return hex(value)


def hb(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def tx_json(tx: SignedTransactionAPI, sender: bytes, header: BlockHeaderAPI | None,
             index: int | None) -> dict[str, Any]:
    type_id = tx.type_id or 0
    out: dict[str, Any] = {
        "hash": hb(tx.hash),
        "type": hx(type_id),
        "nonce": hx(tx.nonce),
        "from": checksum(sender),
        "to": checksum(tx.to) if tx.to else None,
        "value": hx(tx.value),
        "gas": hx(tx.gas),
        "input": hb(tx.data),
        "r": hx(tx.r),
        "s": hx(tx.s),
        "blockHash": hb(header.hash) if header else None,
        "blockNumber": hx(header.block_number) if header else None,
        "transactionIndex": hx(index) if index is not None else None,
    }
    if header is not None:
        out["blockTimestamp"] = hx(header.timestamp)  # as anvil (and geth >= 1.16 on logs)
    if type_id == 0:
        out["gasPrice"] = hx(tx.gas_price)
        v = legacy_v(tx)
        out["v"] = hx(v)
        if v >= 35:
            out["chainId"] = hx((v - 35) // 2)
    else:
        out["chainId"] = hx(cast(int, tx.chain_id))
        out["v"] = hx(tx.y_parity)
        out["yParity"] = hx(tx.y_parity)
        out["accessList"] = [
            {"address": checksum(a), "storageKeys": [hb(k.to_bytes(32, "big"))
                                                                for k in keys]}
            for a, keys in tx.access_list
        ]
        if type_id == 1:
            out["gasPrice"] = hx(tx.gas_price)
        else:
            out["maxFeePerGas"] = hx(tx.max_fee_per_gas)
            out["maxPriorityFeePerGas"] = hx(tx.max_priority_fee_per_gas)
            price = tx.max_fee_per_gas
            if header is not None:
                price = effective_price(tx, base_fee(header))
            out["gasPrice"] = hx(price)
    return out


def effective_price(tx: SignedTransactionAPI, base_fee_per_gas: int) -> int:
    if (tx.type_id or 0) in (0, 1):
        return tx.gas_price
    return min(tx.max_fee_per_gas, base_fee_per_gas + tx.max_priority_fee_per_gas)


def header_json(header: BlockHeaderAPI, size: int) -> dict[str, Any]:
    return {
        "number": hx(header.block_number),
        "hash": hb(header.hash),
        "parentHash": hb(header.parent_hash),
        "nonce": hb(header.nonce),
        "mixHash": hb(header.mix_hash),
        "sha3Uncles": hb(header.uncles_hash),
        "logsBloom": hb(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": hb(header.transaction_root),
        "stateRoot": hb(header.state_root),
        "receiptsRoot": hb(header.receipt_root),
        "miner": checksum(header.coinbase),
        "difficulty": hx(header.difficulty),
        "totalDifficulty": hx(header.difficulty),
        "extraData": hb(header.extra_data),
        "size": hx(size),
        "gasLimit": hx(header.gas_limit),
        "gasUsed": hx(header.gas_used),
        "timestamp": hx(header.timestamp),
        "baseFeePerGas": hx(base_fee(header)),
        "withdrawalsRoot": hb(cast(bytes, header.withdrawals_root)),
        "withdrawals": [],
        "blobGasUsed": hx(header.blob_gas_used),
        "excessBlobGas": hx(header.excess_blob_gas),
        "parentBeaconBlockRoot": hb(cast(bytes, header.parent_beacon_block_root)),
        "requestsHash": hb(cast(Any, header).requests_hash),  # Prague headers only
        "uncles": [],
    }


def _nibbles(key: bytes) -> tuple[int, ...]:
    return tuple(n for byte in key for n in (byte >> 4, byte & 15))


def _hex_prefix(nibbles: tuple[int, ...], leaf: bool) -> bytes:
    flag = 2 if leaf else 0
    padded = (flag + 1, *nibbles) if len(nibbles) % 2 else (flag, 0, *nibbles)
    return bytes(padded[i] << 4 | padded[i + 1] for i in range(0, len(padded), 2))


def trie_root_and_nodes(values: list[bytes]) -> tuple[Hash32, dict[Hash32, bytes]]:
    """Root and nodes of the index-keyed trie of a block's transactions or receipts.

    Same result as py-evm's ``make_trie_root_and_nodes``, built bottom-up from the
    sorted keys in one pass instead of one insertion per item (which dominated the
    cost of a 500-transaction block).
    """
    if not values:
        return BLANK_ROOT_HASH, {}
    items = sorted((_nibbles(rlp.encode(i)), v) for i, v in enumerate(values))
    nodes: dict[Hash32, bytes] = {}

    def ref(node: list[Any]) -> Any:
        encoded = rlp.encode(node)
        if len(encoded) < 32:
            return node
        digest = Hash32(keccak(encoded))
        nodes[digest] = encoded
        return digest

    def build(lo: int, hi: int, depth: int) -> list[Any]:
        if hi - lo == 1:
            key, value = items[lo]
            return [_hex_prefix(key[depth:], True), value]
        first, last = items[lo][0], items[hi - 1][0]
        shared = 0
        while (depth + shared < min(len(first), len(last))
               and first[depth + shared] == last[depth + shared]):
            shared += 1
        if shared:
            return [_hex_prefix(first[depth:depth + shared], False),
                    ref(build(lo, hi, depth + shared))]
        branch: list[Any] = [b""] * 17
        start = lo
        if len(items[lo][0]) == depth:
            branch[16] = items[lo][1]
            start += 1
        while start < hi:
            nibble = items[start][0][depth]
            end = start
            while end < hi and items[end][0][depth] == nibble:
                end += 1
            branch[nibble] = ref(build(start, end, depth + 1))
            start = end
        return branch

    encoded = rlp.encode(build(0, len(items), 0))
    root = Hash32(keccak(encoded))
    nodes[root] = encoded
    return root, nodes
