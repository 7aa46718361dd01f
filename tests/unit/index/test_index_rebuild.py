"""A reset chain with a redeploy at the same address rebuilds the index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from databright.index import Index
from databright.storage import Manifest, ManifestItem
from tests.unit.index.conftest import open_world


def test_redeploy_after_chain_reset_rebuilds_the_index(tmp_path: Path, contract_cache: Path) -> None:
    path = tmp_path / "index.sqlite"
    old = open_world(tmp_path / "chain-1.sqlite", tmp_path / "blobs", contract_cache)
    old.dataset(b"\x01" * 32)
    index = old.index(path)
    index.sync(old.market, old.loaders())
    assert [d.metadata_cid for d in index.datasets()] == [old.loaders().cid_of_digest(b"\x01" * 32)]
    index.close()
    old.node.close()

    new = open_world(tmp_path / "chain-2.sqlite", tmp_path / "blobs", contract_cache)
    assert new.market.address == old.market.address
    new.dataset(b"\x02" * 32)
    index = new.index(path)
    assert index.datasets() == []  # cleared on bind, not served stale
    index.sync(new.market, new.loaders())
    assert [d.metadata_cid for d in index.datasets()] == [new.loaders().cid_of_digest(b"\x02" * 32)]
    new.node.close()


def test_index_file_without_the_new_cursor_columns_is_rebuilt(tmp_path: Path, contract_cache: Path) -> None:
    world = open_world(tmp_path / "chain.sqlite", tmp_path / "blobs", contract_cache)
    world.dataset()
    path = tmp_path / "index.sqlite"
    index = world.index(path)
    index.sync(world.market, world.loaders())
    index.close()
    with sqlite3.connect(path) as db:  # what an index from before these columns looks like
        for column in ("deploy_tx", "genesis_hash", "start_block", "last_hash"):
            db.execute(f"ALTER TABLE cursor DROP COLUMN {column}")
        db.execute("ALTER TABLE proposals DROP COLUMN manifest_matches")
        db.execute("UPDATE datasets SET name = 'stale'")
    index = world.index(path)
    assert index.datasets() == []
    index.sync(world.market, world.loaders())
    assert [d.name for d in index.datasets()] == ["dataset 1"]
    world.node.close()


def test_bind_without_a_ledger_keeps_a_matching_index(tmp_path: Path, contract_cache: Path) -> None:
    world = open_world(tmp_path / "chain.sqlite", tmp_path / "blobs", contract_cache)
    world.dataset()
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    again = Index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    again.bind(world.ledger.chain_id, world.market.address, world.deploy_block, deploy_tx=world.deploy_tx,
               ledger=world.ledger)
    assert len(again.datasets()) == 1
    assert again.sync(world.market, world.loaders()) == 0
    world.node.close()


def test_rebuild_keeps_signed_comments(tmp_path: Path, contract_cache: Path) -> None:
    world = open_world(tmp_path / "chain.sqlite", tmp_path / "blobs", contract_cache)
    dataset_id = world.dataset()
    manifest = Manifest([ManifestItem(world.store.put(b"item"), "x")])
    manifest.save(world.store)
    proposal_id = world.propose(dataset_id, manifest)
    path = tmp_path / "index.sqlite"
    index = world.index(path)
    index.sync(world.market, world.loaders())
    index.add_comment(proposal_id, "0x" + "22" * 20, "keep me", "message", "0x" + "33" * 65)
    index.close()
    with sqlite3.connect(path) as db:  # an index file from before the hash columns: rebuilt on open
        db.execute("ALTER TABLE cursor DROP COLUMN last_hash")
    index = world.index(path)
    assert index.datasets() == []
    index.sync(world.market, world.loaders())
    assert [c.body for c in index.comments(proposal_id)] == ["keep me"]
    world.node.close()
