"""The counters pages show are kept by the indexer as events arrive, and an older index file gets them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.index.conftest import ACCOUNTS, World


def test_counters_follow_the_events(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    late = world.manifest("x", "y")
    world.hidden.add(late.cid)
    world.accept(world.propose(dataset_id, late))  # its manifest arrives after the acceptance
    second = world.propose(dataset_id, world.manifest("a", "b", "a"))
    world.market.vote(ACCOUNTS[1], second, True)  # a holder now too: unanimity needs both
    world.accept(second)
    world.propose(dataset_id, world.manifest("c"))
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    assert sorted(index.label_counts(dataset_id)) == [("a", 2), ("b", 1)]
    world.hidden.clear()
    index.sync(world.market, world.loaders())
    assert sorted(index.label_counts(dataset_id)) == [("a", 2), ("b", 1), ("x", 1), ("y", 1)]
    assert (index.proposal_count(dataset_id), index.proposal_count(dataset_id, "open"),
            index.proposal_count(status="accepted"), index.proposal_count(status="rejected")) == (3, 1, 2, 0)
    d = index.dataset(dataset_id)
    holders = index.holders_page(dataset_id).rows
    assert d.holder_count == len(holders) == 2 and holders[0].holder == ACCOUNTS[0].address
    assert [h.balance for h in holders] == sorted((h.balance for h in holders), reverse=True)


def test_an_index_file_without_the_counters_is_rebuilt(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    world.accept(world.propose(dataset_id, world.manifest("a", "b")))
    path = tmp_path / "index.sqlite"
    index = world.index(path)
    index.sync(world.market, world.loaders())
    index.close()
    with sqlite3.connect(path) as db:  # an index written before the counters existed
        db.execute("DROP TABLE label_counts")
        db.execute("DROP INDEX ix_holders_page")
        db.execute("ALTER TABLE holders DROP COLUMN stake")
        db.execute("DROP INDEX ix_proposals_entries")
        db.execute("ALTER TABLE datasets DROP COLUMN holder_count")
    index = world.index(path)
    index.sync(world.market, world.loaders())
    assert sorted(index.label_counts(dataset_id)) == [("a", 1), ("b", 1)]
    assert index.dataset(dataset_id).holder_count == 2 and len(index.holders_page(dataset_id).rows) == 2
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_holders_page", "ix_proposals_entries"} <= indexes
