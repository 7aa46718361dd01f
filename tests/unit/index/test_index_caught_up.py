"""``Index.caught_up``: true exactly when ``sync`` would find no block to apply."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from databright.index._models import CursorRow
from tests.unit.index.conftest import World


def test_caught_up_holds_only_at_the_head_of_the_same_chain(world: World, tmp_path: Path) -> None:
    index = world.index(tmp_path / "index.sqlite")
    assert not index.caught_up(world.ledger)  # bound, no block applied yet
    index.sync(world.market, world.loaders())  # the deployment's blocks: no DataMarket event yet
    assert index.caught_up(world.ledger)
    world.dataset()  # a block the index has not seen
    assert not index.caught_up(world.ledger)
    assert index.sync(world.market, world.loaders()) > 0
    assert index.caught_up(world.ledger) and index.sync(world.market, world.loaders()) == 0
    with index.engine.begin() as conn:  # what a reset chain or a reorg looks like: another block there
        conn.execute(update(CursorRow).values(last_hash="00" * 32))
    assert not index.caught_up(world.ledger)
    index.sync(world.market, world.loaders())  # rebuilds
    assert index.caught_up(world.ledger) and len(index.datasets()) == 1
    index.close()
