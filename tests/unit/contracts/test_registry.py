"""Registry entries and Merkle proofs of membership (docs/protocol.md leaves)."""

from __future__ import annotations

import hashlib
from typing import Any

import boa
import pytest
from eth_utils import keccak

from market_helpers import create_dataset, leaf, merkle_levels, merkle_proof, mine, propose, vote


def batch(n: int, salt: str = "") -> tuple[list[bytes], list[bytes]]:
    digests = [hashlib.sha256(f"{salt}item-{i}".encode()).digest() for i in range(n)]
    labels = [keccak(text=f"label-{i % 3}") for i in range(n)]
    return digests, labels


def accept(market: Any, creator: str, contributor: str, dataset_id: int, root: bytes, n: int) -> None:
    proposal_id = propose(market, contributor, dataset_id, item_count=n, root=root)
    vote(market, creator, proposal_id, True)
    market.finalize(proposal_id)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_verify_item(market: Any, creator: str, carol: str, n: int) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    digests, labels = batch(n)
    levels = merkle_levels([leaf(d, lab) for d, lab in zip(digests, labels)])
    accept(market, creator, carol, dataset_id, levels[-1][0], n)
    for i in range(n):
        proof = merkle_proof(levels, i)
        assert market.verify_item(dataset_id, 0, digests[i], labels[i], proof)
        # The wrong label, a foreign item or a truncated proof fail.
        assert not market.verify_item(dataset_id, 0, digests[i], keccak(text="other"), proof)
        assert not market.verify_item(dataset_id, 0, b"\x99" * 32, labels[i], proof)
        if proof:
            assert not market.verify_item(dataset_id, 0, digests[i], labels[i], proof[:-1])


def test_single_item_root_is_leaf(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    digest = hashlib.sha256(b"only").digest()
    label = keccak(text="cat")
    accept(market, creator, carol, dataset_id, keccak(keccak(digest + label)), 1)
    assert market.verify_item(dataset_id, 0, digest, label, [])


def test_entries_per_dataset(market: Any, creator: str, alice: str, carol: str) -> None:
    first = create_dataset(market, creator)
    second = create_dataset(market, creator)
    mine()
    a_digests, a_labels = batch(3, "a")
    b_digests, b_labels = batch(4, "b")
    a_levels = merkle_levels([leaf(d, lab) for d, lab in zip(a_digests, a_labels)])
    b_levels = merkle_levels([leaf(d, lab) for d, lab in zip(b_digests, b_labels)])
    accept(market, creator, carol, second, a_levels[-1][0], 3)
    accept(market, creator, alice, second, b_levels[-1][0], 4)
    assert market.entry_count(first) == 0 and market.entry_count(second) == 2
    entry = market.get_entry(second, 1)
    assert (entry.proposal_id, entry.contributor, entry.item_count) == (2, alice, 4)
    assert market.verify_item(second, 1, b_digests[2], b_labels[2], merkle_proof(b_levels, 2))
    assert not market.verify_item(second, 0, b_digests[2], b_labels[2], merkle_proof(b_levels, 2))


def test_unknown_entry(market: Any, creator: str) -> None:
    with boa.reverts("datamarket: unknown dataset"):
        market.get_entry(1, 0)
    dataset_id = create_dataset(market, creator)
    with boa.reverts("datamarket: unknown entry"):
        market.get_entry(dataset_id, 0)
    with boa.reverts("datamarket: unknown entry"):
        market.verify_item(dataset_id, 0, b"\x01" * 32, b"\x02" * 32, [])
    with boa.reverts("datamarket: unknown dataset"):
        market.verify_item(dataset_id + 1, 0, b"\x01" * 32, b"\x02" * 32, [])
