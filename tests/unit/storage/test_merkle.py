from __future__ import annotations

import hashlib
import time

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.storage import MerkleTree, StorageError, item_leaf, label_hash, verify_proof


def _leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [
        item_leaf(hashlib.sha256(salt + i.to_bytes(4, "big")).digest(), f"l{i % 3}")
        for i in range(n)
    ]


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def test_leaf_matches_protocol() -> None:
    digest = hashlib.sha256(b"cat.png").digest()
    expected = keccak(keccak(digest + keccak(b"cat")))
    assert item_leaf(digest, "cat") == expected
    assert label_hash("chat 🐈") == keccak("chat 🐈".encode())
    assert item_leaf(digest, "cat") != item_leaf(digest, "dog")


def test_leaf_rejects_bad_digest() -> None:
    with pytest.raises(StorageError, match="32 bytes"):
        item_leaf(b"\0" * 31, "x")


def test_single_leaf() -> None:
    (leaf,) = _leaves(1)
    tree = MerkleTree([leaf])
    assert tree.root == leaf
    assert tree.proof(0) == []
    assert verify_proof(tree.root, leaf, [])


def test_small_trees_by_hand() -> None:
    a, b, c = _leaves(3)
    assert MerkleTree([a, b]).root == _pair(a, b)
    # Odd node promoted unchanged.
    assert MerkleTree([a, b, c]).root == _pair(_pair(a, b), c)
    assert MerkleTree([a, b, c]).proof(2) == [_pair(a, b)]
    # Sorted pairs: order within a pair does not matter, order of pairs does.
    assert MerkleTree([b, a]).root == MerkleTree([a, b]).root


def test_empty_and_bad_leaves() -> None:
    with pytest.raises(StorageError, match="at least one leaf"):
        MerkleTree([])
    with pytest.raises(StorageError, match="leaf 1"):
        MerkleTree([b"\0" * 32, b"\0" * 31])


@pytest.mark.parametrize("n", range(1, 34))
def test_every_proof_verifies(n: int) -> None:
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    assert len(tree) == n
    for i, leaf in enumerate(leaves):
        proof = tree.proof(i)
        assert len(proof) <= max(1, (n - 1).bit_length())
        assert verify_proof(tree.root, leaf, proof)
        if n > 1:
            other = leaves[(i + 1) % n]
            assert not verify_proof(tree.root, other, proof) or other == leaf


def test_proof_index_out_of_range() -> None:
    tree = MerkleTree(_leaves(4))
    with pytest.raises(IndexError):
        tree.proof(4)
    assert tree.proof(-1) == tree.proof(3)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=33),
    data=st.data(),
)
def test_tampering_is_detected(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n, salt=b"h")
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = tree.proof(i)
    assert verify_proof(tree.root, leaves[i], proof)
    wrong_leaf = data.draw(st.binary(min_size=32, max_size=32).filter(lambda x: x != leaves[i]))
    assert not verify_proof(tree.root, wrong_leaf, proof)
    if proof:
        j = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad = list(proof)
        bad[j] = keccak(bad[j])
        assert not verify_proof(tree.root, leaves[i], bad)
        assert not verify_proof(tree.root, leaves[i], proof[:-1])
    assert not verify_proof(keccak(tree.root), leaves[i], proof)


def test_hundred_thousand_leaves_is_fast() -> None:
    leaves = [keccak(i.to_bytes(32, "big")) for i in range(100_000)]
    # CPU time, not wall time: the bound is about the algorithm, not how busy the machine is.
    start = time.process_time()
    tree = MerkleTree(leaves)
    elapsed = time.process_time() - start
    assert elapsed < 3.0, f"building 100k leaves took {elapsed:.2f}s of CPU"
    assert verify_proof(tree.root, leaves[54_321], tree.proof(54_321))
    assert len(tree.proof(0)) == 17
