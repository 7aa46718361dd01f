"""Our proofs and leaves agree with snekmate's on-chain verifier (via titanoboa)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from databright.storage import Manifest, ManifestItem, MerkleTree, cid_of, item_leaf

boa = pytest.importorskip("boa")

VERIFIER = Path(__file__).parent / "fixtures" / "verifier.vy"


@pytest.fixture(scope="module")
def verifier() -> Any:
    # boa searches sys.path for imports, so `snekmate` resolves from site-packages.
    return boa.load(str(VERIFIER))


@pytest.mark.parametrize("label", ["cat", "", "chat 🐈", "x" * 200])
def test_leaf_computed_on_chain(verifier: Any, label: str) -> None:
    digest = hashlib.sha256(label.encode()).digest()
    assert verifier.item_leaf(digest, label) == item_leaf(digest, label)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 33])
def test_proofs_verify_on_chain(verifier: Any, n: int) -> None:
    manifest = Manifest(
        ManifestItem(cid_of(f"item {i}".encode()), f"class-{i % 4}", {"row": i}) for i in range(n)
    )
    for i in range(n):
        leaf, proof = manifest.leaf(i), manifest.proof(i)
        assert verifier.verify(proof, manifest.root, leaf)
        wrong = manifest.leaf((i + 1) % n)
        assert verifier.verify(proof, manifest.root, wrong) == (wrong == leaf)


def test_wrong_root_fails_on_chain(verifier: Any) -> None:
    leaves = [item_leaf(hashlib.sha256(bytes([i])).digest(), "a") for i in range(6)]
    tree = MerkleTree(leaves)
    assert not verifier.verify(tree.proof(2), leaves[0], leaves[2])
