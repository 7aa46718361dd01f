"""Keyset pagination over the index: opaque cursors and pages of rows.

A page is the ``limit`` rows that follow (or precede) the sort key of the row a
cursor names, found by an index seek (``WHERE (k1, k2) > (:a, :b) ORDER BY k1,
k2 LIMIT n``), so page 10,000 costs what page 1 costs; OFFSET would read and
discard every row before it. A cursor is the base64url of a small JSON object
naming the list it belongs to, the last (or first) row's key and the direction;
it is decoded strictly, so a truncated, edited or foreign cursor is refused with
one line instead of silently showing some other page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from databright.errors import InputError

__all__ = [
    "CursorError", "MAX_LIMIT", "Page", "check_limit", "decode_cursor", "encode_cursor", "keyset_page", "sequence_page",
]

T = TypeVar("T")

MAX_LIMIT = 1000  # rows one page may hold, whoever asks
_MAX_CURSOR = 600  # characters: keys are a few ids and at most an address or a padded amount
_MAX_TEXT = 100

Key = tuple[int | str, ...]


class CursorError(InputError):
    """A page cursor that this list did not hand out."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows in list order, and the cursors of the pages after and before them (None at either end)."""

    rows: list[T]
    next_cursor: str | None
    prev_cursor: str | None


def encode_cursor(kind: str, key: Key, *, before: bool = False) -> str:
    payload = json.dumps({"l": kind, "k": list(key), "d": "<" if before else ">"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str, types: Sequence[type]) -> tuple[Key, bool]:
    """The key and direction (True: the page before the key) of a cursor of list ``kind``."""
    bad = CursorError(f"invalid cursor {cursor[:40]!r}: pass a next_cursor or prev_cursor this list returned")
    if not cursor or len(cursor) > _MAX_CURSOR or not cursor.isascii():
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    if not isinstance(data, dict) or set(data) != {"l", "k", "d"} or data["d"] not in ("<", ">"):
        raise bad
    if data["l"] != kind:
        raise CursorError(f"invalid cursor: it belongs to another list ({str(data['l'])[:20]}), not {kind}")
    key = data["k"]
    if not isinstance(key, list) or len(key) != len(types):
        raise bad
    for value, expected in zip(key, types, strict=True):
        # bool is an int to Python, never to a key; texts are ids and addresses, never essays.
        if type(value) is not expected or (isinstance(value, str) and len(value) > _MAX_TEXT):
            raise bad
    if encode_cursor(kind, tuple(key), before=data["d"] == "<") != cursor:
        raise bad  # one cursor per page: no padding, spacing or key-order variants
    return tuple(key), data["d"] == "<"


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def keyset_page(
    session: Session,
    query: Select[Any],
    kind: str,
    keys: Sequence[InstrumentedAttribute[Any]],
    cursor: str | None,
    limit: int,
    *,
    descending: bool = False,
) -> Page[Any]:
    """One page of ``query`` (already filtered) in the order of ``keys``, which must be unique together.

    ``keys`` all ascend, or all descend, so that a single row-value comparison
    bounds the page and one index (the filter's columns, then ``keys``) serves it.
    """
    check_limit(limit)
    types = [k.type.python_type for k in keys]
    key: Key | None = None
    before = False
    if cursor is not None:
        key, before = decode_cursor(kind, cursor, [int if t is bool else t for t in types])
    backwards = descending != before  # scanning towards smaller keys
    if key is not None:
        bound = tuple_(*keys) < tuple_(*key) if backwards else tuple_(*keys) > tuple_(*key)
        query = query.where(bound)
    query = query.order_by(*(k.desc() if backwards else k.asc() for k in keys)).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    if before:
        rows.reverse()

    def key_of(row: Any) -> Key:
        return tuple(getattr(row, k.key) for k in keys)

    first = key_of(rows[0]) if rows else key
    last = key_of(rows[-1]) if rows else key
    has_next = (more and not before) or (before and key is not None)
    has_prev = (more and before) or (not before and key is not None)
    return Page(
        rows,
        encode_cursor(kind, last) if has_next and last is not None else None,
        encode_cursor(kind, first, before=True) if has_prev and first is not None else None,
    )


def sequence_page(rows: Sequence[T], kind: str, key: Callable[[T], Key], types: Sequence[type], cursor: str | None,
                  limit: int, *, descending: bool = False) -> Page[T]:
    """One page of a short list held in memory, with the cursors :func:`keyset_page` hands out.

    ``rows`` are already in list order: ``key`` unique and ascending (descending with ``descending``).
    """
    check_limit(limit)
    keys = [key(row) for row in rows]
    start, stop = 0, min(limit, len(keys))
    bound: Key | None = None
    before = False
    if cursor is not None:
        bound, before = decode_cursor(kind, cursor, types)
        # Rows in front of the cursor's key in list order form a prefix of the list.
        ahead = sum(1 for k in keys if (k > bound if descending else k < bound))
        if before:
            start, stop = max(0, ahead - limit), ahead
        else:
            start = ahead + (1 if ahead < len(keys) and keys[ahead] == bound else 0)
            stop = min(start + limit, len(keys))
    page = list(rows[start:stop])
    first = keys[start] if page else bound
    last = keys[stop - 1] if page else bound
    return Page(
        page,
        encode_cursor(kind, last) if stop < len(keys) and last is not None else None,
        encode_cursor(kind, first, before=True) if start > 0 and first is not None else None,
    )
