"""Pack files: the small blobs of a batch, many to a file, indexed in SQLite.

A fresh local store that gave every blob its own file paid a directory entry,
often a directory, and a rename per blob: a 100k-row proposal spent most of
its time creating files. Inside a batch, blobs up to ``PACK_LIMIT`` bytes are
appended to one pack file instead (``<root>/packs/<random>.pack``) and an
index (``<root>/packs/index.sqlite``) maps each CID to ``(pack, offset,
length)``.

Order of a commit, so a crash leaves every blob absent or complete: the
pack's bytes are fsynced (and its directory entry, the first time), and only
then are its index rows inserted, in one SQLite transaction (WAL,
``synchronous=FULL``). A row therefore never points at bytes that are not on
disk; bytes a crash left without rows are unreachable and harmless. Readers
(the dashboard, the evaluator, in other processes) see rows only once their
transaction committed. Every read is still verified against the CID by the
store, so a damaged pack is reported, never served.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ._cid import CID
from ._errors import IntegrityError, StorageError

__all__ = ["PACK_LIMIT", "PackIndex", "PackWriter", "fsync_path"]

#: Blobs larger than this keep a file of their own: a pack is read blob by blob into memory.
PACK_LIMIT = 1 << 20
#: A batch starts a new pack file beyond this size, so no file grows without bound.
PACK_BYTES = 1 << 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    cid    TEXT PRIMARY KEY,
    pack   TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
) WITHOUT ROWID
"""


class PackIndex:
    """The CID -> (pack, offset, length) index of one store's packs.

    One connection per store object, shared by its threads under a lock; it is
    opened only once the index file exists, so reading a store that never had
    a batch creates nothing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "index.sqlite"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.is_file():
            return None
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            if create:  # a reader changes nothing: it may meet the file a writer is creating
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the pack index {self.path}: {exc}") from None
        self._conn = conn
        weakref.finalize(self, conn.close)
        return conn

    def _query(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return []
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # created but not yet initialised by its writer
                    return []
                raise StorageError(f"cannot read the pack index {self.path}: {exc}") from None

    def lookup(self, cid: str) -> tuple[str, int, int] | None:
        rows = self._query("SELECT pack, offset, length FROM blobs WHERE cid = ?", (cid,))
        return (str(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def add(self, rows: list[tuple[str, str, int, int]]) -> None:
        """Insert ``(cid, pack, offset, length)`` rows in one durable transaction."""
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            try:
                # This connection may have been opened as a reader's, before the index was set up.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
                conn.execute("BEGIN IMMEDIATE")
                # A blob another writer packed meanwhile keeps its first copy.
                conn.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"cannot index packed blobs in {self.path}: {exc}") from None

    def cids(self) -> Iterator[str]:
        return iter([str(row[0]) for row in self._query("SELECT cid FROM blobs")])

    def read(self, cid: str) -> bytes | None:
        """The stored bytes of a packed ``cid`` (unverified), or None if it is not packed."""
        where = self.lookup(cid)
        if where is None:
            return None
        pack, offset, length = where
        try:
            with open(self.directory / pack, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except FileNotFoundError:
            raise IntegrityError(f"blob {cid} is lost: its pack {pack} is missing") from None
        if len(data) != length:
            raise IntegrityError(f"blob {cid} is corrupt: its pack {pack} is truncated")
        return data


class PackWriter:
    """The pack file of one batch: blobs appended, made durable and indexed at each commit."""

    def __init__(self, index: PackIndex) -> None:
        self.index = index
        #: Blobs appended since the last commit: not yet readable.
        self.pending: dict[CID, tuple[int, int]] = {}
        self._file: BinaryIO | None = None
        self._name = ""
        self._size = 0
        self._committed = False

    def add(self, cid: CID, data: bytes) -> None:
        if self._file is None or self._size + len(data) > PACK_BYTES and self._size:
            self._open()
        assert self._file is not None
        self._file.write(data)
        self.pending[cid] = (self._size, len(data))
        self._size += len(data)

    def _open(self) -> None:
        if self._file is not None:
            self.commit()
            self._file.close()
        self.index.directory.mkdir(parents=True, exist_ok=True)
        self._name = f"{secrets.token_hex(8)}.pack"
        self._file = open(self.index.directory / self._name, "xb")  # noqa: SIM115 - closed by close()
        self._size = 0
        self._committed = False
        # The new file's name must survive a crash too, before any row names it.
        fsync_path(self.index.directory)

    def commit(self) -> None:
        """Make the pending blobs durable, then readable."""
        if not self.pending or self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self.index.add([(cid, self._name, offset, length) for cid, (offset, length) in self.pending.items()])
        self.pending.clear()
        self._committed = True

    def close(self, failed: bool) -> None:
        """Close the pack; after a failure a pack no row names is removed."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.pending.clear()
        if failed and not self._committed:
            (self.index.directory / self._name).unlink(missing_ok=True)


def fsync_path(path: str | Path) -> None:
    """Fsync a file or a directory (its entries) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
