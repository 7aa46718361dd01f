"""Concurrent syncs on one index file apply each event exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import text

from databright.chain import DataMarket, Event
from databright.errors import IndexError_
from databright.index import Index, ItemRecord, Loaders
from tests.unit.index.conftest import ACCOUNTS, World


class Recorded:
    """The market's events read once, served to any thread (a stand-in for DataMarket)."""

    def __init__(self, market: DataMarket, pause: threading.Event | None = None,
                 paused: threading.Event | None = None) -> None:
        self.ledger = market.ledger
        self.address = market.address
        self.head = market.ledger.block_number()
        self._events = list(market.events(0, self.head))
        self._pause, self._paused = pause, paused

    def events(self, start: int, end: int) -> Iterator[Event]:
        if self._paused is not None and self._pause is not None:
            self._paused.set()
            assert self._pause.wait(30)
        return iter([e for e in self._events if start <= e.block_number <= end])


def _history(world: World) -> None:
    dataset_id = world.dataset()
    world.accept(world.propose(dataset_id, world.manifest("a", "b")))
    world.market.deposit(ACCOUNTS[2], dataset_id, 10**18)


def _state(index: Index) -> tuple[object, ...]:
    (d,) = index.datasets()
    return (d.revenue_total, d.item_count, d.total_supply, len(index.revenue(1)), len(index.proposals()),
            len(index.items(1)), [(h.holder, h.balance) for h in index.holders(1)])


def _expected(world: World, tmp_path: Path) -> tuple[object, ...]:
    index = world.index(tmp_path / "reference.sqlite")
    index.sync(world.market, world.loaders())
    return _state(index)


def test_threads_syncing_one_file_apply_each_event_once(world: World, tmp_path: Path) -> None:
    _history(world)
    expected = _expected(world, tmp_path)
    assert expected[0] == 10**18 and expected[3] == 1  # the deposit, once
    market = cast(DataMarket, Recorded(world.market))
    path = tmp_path / "shared.sqlite"
    indexes = [world.index(path) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(indexes))

    def run(index: Index) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                index.sync(market, world.loaders())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _state(indexes[0]) == expected


def test_sync_that_lost_the_claim_rereads_the_cursor(world: World, tmp_path: Path) -> None:
    """A reads the cursor and the events, B syncs everything, then A goes on."""
    _history(world)
    expected = _expected(world, tmp_path)
    pause, paused = threading.Event(), threading.Event()
    slow = cast(DataMarket, Recorded(world.market, pause, paused))
    fast = cast(DataMarket, Recorded(world.market))
    a, b = world.index(tmp_path / "shared.sqlite"), world.index(tmp_path / "shared.sqlite")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(a.sync(slow, world.loaders())))
    thread.start()
    assert paused.wait(30)
    assert b.sync(fast, world.loaders()) > 0
    pause.set()
    thread.join(30)
    assert result == [0]
    assert _state(a) == expected


def test_sync_waiting_for_a_writer_does_not_reapply(world: World, tmp_path: Path) -> None:
    """B starts while A holds the write lock inside its range: B waits, then finds it claimed."""
    _history(world)
    expected = _expected(world, tmp_path)
    market = cast(DataMarket, Recorded(world.market))
    inside, release = threading.Event(), threading.Event()
    base = world.loaders()

    def slow_manifest(cid: str) -> list[ItemRecord] | None:
        inside.set()
        assert release.wait(30)
        return base.manifest(cid)

    a, b = world.index(tmp_path / "shared.sqlite"), world.index(tmp_path / "shared.sqlite")
    counts: dict[str, int] = {}
    ta = threading.Thread(target=lambda: counts.update(a=a.sync(market, Loaders(
        base.cid_of_digest, slow_manifest, base.metadata))))
    ta.start()
    assert inside.wait(30)
    tb = threading.Thread(target=lambda: counts.update(b=b.sync(market, base)))
    tb.start()
    tb.join(0.5)
    assert tb.is_alive()  # blocked on A's write lock
    release.set()
    ta.join(30)
    tb.join(30)
    assert counts["a"] > 0 and counts["b"] == 0
    assert _state(b) == expected


def test_database_errors_become_index_errors(world: World, tmp_path: Path) -> None:
    index = world.index(tmp_path / "index.sqlite")
    with index.engine.begin() as conn:
        conn.execute(text("DROP TABLE revenue"))
    world.market.deposit(ACCOUNTS[2], world.dataset(), 10**18)
    with pytest.raises(IndexError_, match="^index sync failed: no such table: revenue$"):
        index.sync(world.market, world.loaders())


