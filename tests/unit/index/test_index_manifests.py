"""Manifests: late loading, the on-chain commitment check, duplicate flags."""

from __future__ import annotations

from pathlib import Path

from databright.storage import digest_of_cid
from tests.unit.index.conftest import ACCOUNTS, World


def test_manifest_missing_at_sync_is_loaded_by_a_later_sync(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    manifest = world.manifest("a", "b", "c")
    pid = world.propose(dataset_id, manifest)
    world.hidden.add(manifest.cid)
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    proposal = index.proposal(pid)
    assert (proposal.manifest_available, proposal.manifest_matches) == (False, None)
    assert index.items(dataset_id, accepted=None) == []

    world.hidden.clear()
    assert index.sync(world.market, world.loaders()) == 0  # no new events, but the blob is retried
    proposal = index.proposal(pid)
    assert (proposal.manifest_available, proposal.manifest_matches) == (True, True)
    assert [i.label for i in index.items(dataset_id, accepted=None)] == ["a", "b", "c"]
    index.sync(world.market, world.loaders())
    assert len(index.items(dataset_id, accepted=None)) == 3  # not inserted twice


def test_manifest_loaded_after_acceptance_is_accepted(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    manifest = world.manifest("a", "b")
    world.hidden.add(manifest.cid)
    world.accept(world.propose(dataset_id, manifest))
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    world.hidden.clear()
    index.sync(world.market, world.loaders())
    assert [(i.label, i.accepted) for i in index.items(dataset_id, accepted=None)] == [("a", True), ("b", True)]


def test_manifest_not_matching_the_chain_is_flagged(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    manifest = world.manifest("a", "b", "c")
    other = world.manifest("x", "y", "z")
    digest = digest_of_cid(manifest.cid)
    good = world.propose(dataset_id, manifest)
    # A root is open at most once per dataset: the wrong count goes elsewhere.
    wrong_count = world.market.propose(ACCOUNTS[1], world.dataset(), manifest.root, digest, 4)
    wrong_root = world.market.propose(ACCOUNTS[1], dataset_id, other.root, digest, 3)
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    assert index.proposal(good).manifest_matches is True
    assert index.proposal(wrong_count).manifest_matches is False
    assert index.proposal(wrong_root).manifest_matches is False


def test_repeats_within_one_batch_are_flagged(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    pid = world.propose(dataset_id, world.manifest("a", "b", "a", "a"))
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    assert [i.duplicate_of for i in index.items(dataset_id, accepted=None)] == [None, None, pid, pid]
    assert index.proposal(pid).duplicate_count == 2


def test_acceptance_flags_the_open_proposals_it_duplicates(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    first = world.propose(dataset_id, world.manifest("a", "b"))
    second = world.propose(dataset_id, world.manifest("b", "c", "a"))
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    assert index.proposal(second).duplicate_count == 0
    world.accept(first)
    index.sync(world.market, world.loaders())
    items = index.items(dataset_id, accepted=False, proposal_id=second)
    assert [(i.label, i.duplicate_of) for i in items] == [("b", first), ("c", None), ("a", first)]
    assert index.proposal(second).duplicate_count == 2
    assert index.proposal(first).duplicate_count == 0
