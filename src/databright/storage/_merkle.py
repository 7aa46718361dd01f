"""Merkle roots and proofs over batches of items, as the contracts verify them.

The rules are pinned in docs/protocol.md:

- ``label_hash = keccak256(utf8(label))``
- ``leaf = keccak256(keccak256(item_digest ‖ label_hash))`` — the double hash
  keeps a leaf from ever being mistaken for an inner node;
- ``node = keccak256(min(a, b) ‖ max(a, b))`` — sorted pairs, so a proof is just
  the list of siblings (what snekmate's ``merkle_proof_verification`` checks);
- a level with an odd number of nodes promotes its last node unchanged;
- a single leaf is its own root, with an empty proof.

Levels are kept as plain lists of 32-byte strings, so 100,000 leaves build in
well under a second or two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_hash.auto import keccak

from ._cid import digest_of_cid
from ._errors import StorageError

_NODE_SIZE = 32


def label_hash(label: str) -> bytes:
    """Return ``keccak256(utf8(label))``."""
    return keccak(label.encode("utf-8"))


def item_leaf(item_digest: bytes, label: str) -> bytes:
    """Return the Merkle leaf of an item with sha-256 ``item_digest`` and ``label``."""
    if len(item_digest) != _NODE_SIZE:
        raise StorageError(f"an item digest is 32 bytes, got {len(item_digest)}")
    return keccak(keccak(bytes(item_digest) + label_hash(label)))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a < b else b + a)


class MerkleTree:
    """A sorted-pair Merkle tree over ``leaves`` (already-hashed 32-byte leaves)."""

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise StorageError("a Merkle tree needs at least one leaf")
        level = [bytes(leaf) for leaf in leaves]
        for i, leaf in enumerate(level):
            if len(leaf) != _NODE_SIZE:
                raise StorageError(f"leaf {i} is {len(leaf)} bytes, not 32")
        levels = [level]
        while len(level) > 1:
            nxt = [_parent(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            levels.append(nxt)
            level = nxt
        self._levels = levels

    def __len__(self) -> int:
        return len(self._levels[0])

    def __repr__(self) -> str:
        return f"MerkleTree(leaves={len(self)}, root=0x{self.root.hex()})"

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self._levels[-1][0]

    @property
    def leaves(self) -> list[bytes]:
        """The leaves, in order."""
        return list(self._levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Return the sibling hashes from leaf ``index`` up to the root."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"leaf index {index} out of range for {n} leaves")
        index %= n
        proof = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


class MerkleRoot:
    """The root of the same tree as :class:`MerkleTree`, built leaf by leaf in O(log n) memory.

    ``pending[h]`` holds a left node of height ``h`` still waiting for its right
    sibling. When the leaves run out, a waiting node is the last of its level:
    it is promoted unchanged until it meets a waiting node to its left.
    """

    __slots__ = ("_count", "_pending")

    def __init__(self) -> None:
        self._pending: list[bytes | None] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, leaf: bytes) -> None:
        if len(leaf) != _NODE_SIZE:
            raise StorageError(f"leaf {self._count} is {len(leaf)} bytes, not 32")
        self._count += 1
        node, height = bytes(leaf), 0
        while height < len(self._pending) and self._pending[height] is not None:
            left = self._pending[height]
            assert left is not None
            node = _parent(left, node)
            self._pending[height] = None
            height += 1
        if height == len(self._pending):
            self._pending.append(node)
        else:
            self._pending[height] = node

    @property
    def root(self) -> bytes:
        if not self._count:
            raise StorageError("a Merkle tree needs at least one leaf")
        carry: bytes | None = None
        for node in self._pending:
            if node is not None:
                carry = node if carry is None else _parent(node, carry)
        assert carry is not None
        return carry


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The root of ``leaves`` (an iterable, consumed once) without keeping the tree."""
    builder = MerkleRoot()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root


def batch_commitment(items: Sequence[tuple[str, str]]) -> tuple[int, str] | None:
    """The (item count, 0x-hex Merkle root) a batch of (item CID, label) pairs commits to on
    chain, or None for a batch no proposal can commit to (empty, or a CID that is not one)."""
    if not items:
        return None
    try:
        leaves = [item_leaf(digest_of_cid(cid), label) for cid, label in items]
    except StorageError:
        return None
    return len(leaves), "0x" + merkle_root(leaves).hex()


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """Return whether ``proof`` shows that ``leaf`` is in the tree with ``root``."""
    node = bytes(leaf)
    for sibling in proof:
        node = _parent(node, bytes(sibling))
    return node == bytes(root)
