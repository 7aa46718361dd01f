"""Keyset pages over the index: every row once in both directions, strict cursors, index seeks, flat cost."""

from __future__ import annotations

import sqlite3
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from databright.errors import InputError
from databright.index import CursorError, Index, Page
from databright.index._pages import encode_cursor
from tests.unit.index.synthetic import build


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    index = build(tmp_path_factory.mktemp("pages") / "index.sqlite", 2_500, per_proposal=100, holders=7)
    yield index
    index.close()


def _walk(fetch: Callable[[str | None], Page[Any]], key: Callable[[Any], Any]) -> tuple[list[Any], list[Any]]:
    """Keys of every page forwards from the first page, then backwards from the last."""
    forwards, cursor, last = [], None, None
    while True:
        page = fetch(cursor)
        forwards += [key(r) for r in page.rows]
        if page.next_cursor is None:
            last = page
            break
        cursor = page.next_cursor
    backwards = [key(r) for r in last.rows]
    cursor = last.prev_cursor
    while cursor is not None:
        page = fetch(cursor)
        backwards = [key(r) for r in page.rows] + backwards
        cursor = page.prev_cursor
    return forwards, backwards


LISTS: dict[str, tuple[Callable[[Index, str | None], Page[Any]], Callable[[Any], Any], int]] = {
    "items": (lambda ix, c: ix.items_page(1, cursor=c, limit=333), lambda r: (r.proposal_id, r.position), 2_500),
    "proposal items": (lambda ix, c: ix.items_page(1, proposal_id=3, accepted=None, cursor=c, limit=30),
                       lambda r: r.position, 100),
    "proposals newest first": (lambda ix, c: ix.proposals_page(1, "accepted", cursor=c, limit=4, newest_first=True),
                               lambda r: -r.proposal_id, 25),
    "entries": (lambda ix, c: ix.entries_page(1, cursor=c, limit=10), lambda r: r.entry_index, 25),
    "holders": (lambda ix, c: ix.holders_page(1, cursor=c, limit=3), lambda r: -r.balance, 7),
    "votes": (lambda ix, c: ix.votes_page(1, cursor=c, limit=2), lambda r: r.id, 7),
}


@pytest.mark.parametrize("name", LISTS)
def test_pages_list_every_row_once_in_both_directions(small: Index, name: str) -> None:
    fetch, key, total = LISTS[name]
    forwards, backwards = _walk(lambda c: fetch(small, c), key)
    assert forwards == backwards == sorted(forwards) and len(set(forwards)) == total


def test_the_last_and_first_pages_say_so(small: Index) -> None:
    first = small.items_page(1, limit=100)
    assert first.prev_cursor is None and first.next_cursor is not None
    everything = small.items_page(1, limit=1000)
    assert len(everything.rows) == 1000
    assert small.proposals_page(1, limit=1000).next_cursor is None
    assert small.proposal_count(1) == small.proposal_count() == 25 and small.proposal_count(1, "open") == 0
    assert sorted(small.label_counts(1)) == [(f"c{k}", 250) for k in range(10)]


@pytest.mark.parametrize("cursor", [
    "", "not a cursor", "eyJsIjoiaXRlbXMi", encode_cursor("items", (1, 47)) + "==",
    encode_cursor("items", (1, 47)) + "A", encode_cursor("items", ("1", 47)), encode_cursor("items", (1,)),
    encode_cursor("items", (True, 47)), encode_cursor("items", (1, 2.5)),  # type: ignore[arg-type]
    "eyJsIjoiaXRlbXMiLCJrIjpbMSw0N10sImQiOiI-In0".replace("I", "i"), "é" * 10, "A" * 700,
])
def test_a_cursor_not_handed_out_is_refused(small: Index, cursor: str) -> None:
    with pytest.raises(CursorError, match="invalid cursor"):
        small.items_page(1, cursor=cursor)


def test_a_cursor_of_another_list_is_refused(small: Index) -> None:
    cursor = small.proposals_page(1, limit=2).next_cursor
    with pytest.raises(CursorError, match="another list"):
        small.items_page(1, cursor=cursor)
    newest = small.proposals_page(1, limit=2, newest_first=True).next_cursor
    with pytest.raises(CursorError, match="another list"):
        small.proposals_page(1, cursor=newest)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limits_are_capped(small: Index, limit: int) -> None:
    with pytest.raises(InputError, match="limit must be between 1 and 1000"):
        small.items_page(1, limit=limit)


def _plans(index: Index, path: Path, read: Callable[[], object]) -> list[str]:
    """SQLite's plan of every SELECT that ``read`` runs."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(index.engine, "before_cursor_execute", record)
    try:
        read()
    finally:
        event.remove(index.engine, "before_cursor_execute", record)
    with sqlite3.connect(path) as db:
        return [" / ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)) for sql, params in seen]


def test_each_page_is_an_index_seek_without_a_sort(small: Index, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = Path(str(small.engine.url.database))
    deep = {name: fetch(small, None).next_cursor for name, (fetch, _, _) in LISTS.items()}
    for name, (fetch, _, _) in LISTS.items():
        for cursor in (None, deep[name]):
            [plan] = _plans(small, path, lambda: fetch(small, cursor))
            assert "TEMP B-TREE" not in plan, (name, plan)
            assert plan.startswith("SEARCH") and "USING" in plan and "INDEX" in plan, (name, plan)
    for read in (lambda: small.proposals_page(limit=5), lambda: small.proposals_page(status="accepted", limit=5),
                 lambda: small.revenue_page(1), lambda: small.comments_page(1), lambda: small.label_counts(1)):
        for plan in _plans(small, path, read):
            # All proposals, newest or oldest first: the primary key's order, read until the page is full.
            assert "TEMP B-TREE" not in plan and (plan.startswith("SEARCH") or plan.startswith("SCAN proposals")), plan


def _median_page_seconds(index: Index, cursor: str | None) -> float:
    times = []
    for _ in range(9):
        start = time.perf_counter()
        index.items_page(1, cursor=cursor, limit=100)
        times.append(time.perf_counter() - start)
    return sorted(times)[4]


def test_a_page_of_a_million_items_costs_what_a_page_of_a_thousand_does(tmp_path: Path) -> None:
    costs = {}
    for n in (1_000, 1_000_000):
        index = build(tmp_path / f"index-{n}.sqlite", n)
        deep = encode_cursor("items", (n // 1000 - 1 or 1, 499))  # near the end: OFFSET would read it all
        _median_page_seconds(index, None)  # warm the page cache, as a running server has it
        tracemalloc.start()
        costs[n] = (_median_page_seconds(index, None), _median_page_seconds(index, deep))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(index.items_page(1, cursor=deep, limit=100).rows) == 100
        assert peak < 4 * 2**20, peak  # a page, not the dataset
        index.close()
    small, large = costs[1_000], costs[1_000_000]
    # Generous for a shared machine: OFFSET or loading every row would make this 100-1000x.
    assert large[0] < 5 * small[0] + 0.005 and large[1] < 5 * small[1] + 0.005, costs
