"""The SQLite file under the chain: py-evm's key/value store and the RPC index tables.

* ``kv`` — py-evm's key/value store (trie nodes, headers, canonical lookups).
* ``blocks``, ``txs``, ``logs`` — a JSON-RPC view written in the *same* SQLite
  transaction as the block (see ``SQLiteKV.add_rows``).
* ``pool`` — the journal of accepted, not yet mined transactions; ``dropped`` —
  why an accepted transaction will never be mined (see ``_evm.PersistentChain``).

WAL mode with ``synchronous=NORMAL``: a committed transaction survives ``kill -9``
(the OS already holds the WAL pages). Checkpoints run on a background thread so a
block's commit never pays for one.

Our files carry a mark: SQLite's ``application_id`` and ``user_version`` in the
header, and the genesis hash in ``meta``. ``SQLiteKV`` refuses, before writing a
byte, a file without the mark or visibly damaged (empty, not SQLite, shorter
than its header says), so a damaged chain is never mistaken for a new one. A
new chain is built under a temporary name and linked into place (``publish``).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eth.db.backends.base import BaseDB

from databright.errors import ChainError

__all__ = ["ChainLock", "ReadOnlyKV", "SQLiteKV", "connect_read_only", "damaged", "immediate",
           "publish", "verify_file"]

_READ_CACHE_LIMIT = 200_000
_WAL_CHECKPOINT_BYTES = 4 << 20
APPLICATION_ID = 0x44427243  # "DBrC": a DataBright chain
FORMAT_VERSION = 1
_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (bytes.fromhex("377f0682"), bytes.fromhex("377f0683"))
_LEGACY_GENESIS_KEY = b"databright:genesis"  # files from before the mark have this key


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can neither write to ``path`` nor create it."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def damaged(path: Path, reason: object) -> ChainError:
    """The one-line refusal for a chain file we cannot trust."""
    return ChainError(
        f"{path} is not a usable chain database ({reason}); it was left as it is: restore it "
        "from a backup ('databright node --backup DEST' makes one) or move it away to start a new chain")


def verify_file(path: Path) -> None:
    """Refuse ``path`` unless it is a DataBright chain file that looks whole; reads only."""
    size = path.stat().st_size
    if size == 0:
        raise damaged(path, "the file is empty")
    with open(path, "rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise damaged(path, "not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The in-header size is valid when its version number matches the change counter.
    # A checkpoint killed half-way may leave the header ahead of the file's end:
    # then every page missing from the file is still in the write-ahead log.
    if header[92:96] == header[24:28] and size < pages * page_size:
        in_wal = _wal_pages(Path(f"{path}-wal"))
        if not all(page in in_wal for page in range(size // page_size + 1, pages + 1)):
            raise damaged(path, f"truncated: {size} bytes of {pages * page_size}")
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size >= 32:
        with open(wal, "rb") as file:
            if file.read(4) not in _WAL_MAGIC:  # SQLite would ignore it, and the blocks in it
                raise damaged(path, f"its write-ahead log {wal.name} is not one")
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        raise damaged(path, exc) from None
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if version > FORMAT_VERSION:
                raise ChainError(f"{path} was written by a newer DataBright (format {version}); "
                                 "upgrade databright to open it")
            if conn.execute("SELECT value FROM meta WHERE key = 'genesis_hash'").fetchone() is None:
                raise damaged(path, "no genesis hash")
        elif app_id != 0 or version != 0 or conn.execute(
                "SELECT 1 FROM kv WHERE k = ?", (_LEGACY_GENESIS_KEY,)).fetchone() is None:
            raise damaged(path, "not a DataBright chain")
    except sqlite3.Error as exc:
        raise damaged(path, exc) from None
    finally:
        conn.close()


def _wal_pages(wal: Path) -> set[int]:
    """The page numbers of the frames in ``wal`` that belong to its current log."""
    pages: set[int] = set()
    try:
        file = open(wal, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return pages
    with file:
        header = file.read(32)
        if len(header) < 32 or header[:4] not in _WAL_MAGIC:
            return pages
        frame_size = 24 + int.from_bytes(header[8:12], "big")
        salts = header[16:24]
        offset = 32
        while True:
            file.seek(offset)
            frame = file.read(24)
            if len(frame) < 24 or frame[8:16] != salts:  # a frame of an older log
                return pages
            pages.add(int.from_bytes(frame[:4], "big"))
            offset += frame_size


def publish(built: Path, path: Path) -> None:
    """Move the finished chain file ``built`` to ``path`` atomically, never over a file."""
    with sqlite3.connect(built, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no WAL beside it
    conn.close()
    fd = os.open(built, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(built, path)  # fails if path exists: a chain is never replaced
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            built.unlink()
            raise
        # A file system without hard links: rename, having looked first.
        if path.exists():
            built.unlink()
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.rename(built, path)
    else:
        built.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteKV(BaseDB):
    """py-evm's key/value store over SQLite; writes inside ``write()`` are one transaction."""

    def __init__(self, path: Path, *, new: bool = False) -> None:
        """Open the chain file at ``path`` (``verify_file`` first), or with ``new``
        start one there (an empty path: see ``publish``)."""
        self.path = path
        if new:
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
                stale.unlink(missing_ok=True)
        else:
            verify_file(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Checkpoints (copying the WAL back into the database, with an fsync) run
        # on a thread of their own, not inside a block's commit.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536",
                       "wal_autocheckpoint=0"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(_SCHEMA)
        # Held for each write transaction, here and by the pool journal's own
        # connection (see _evm): writers queue on it instead of sleeping in
        # SQLite's busy handler.
        self.commit_lock = threading.Lock()
        self._pending: dict[bytes, bytes | None] | None = None
        self._rows: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._cache: dict[bytes, bytes] = {}
        self._wal = Path(f"{path}-wal")
        self._checkpoint_due = threading.Event()
        self._closing = False
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True,
                                              name="databright-checkpoint")
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                if self._closing:
                    return
                with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _maybe_checkpoint(self) -> None:
        with contextlib.suppress(OSError):
            if self._wal.stat().st_size > _WAL_CHECKPOINT_BYTES:
                self._checkpoint_due.set()

    def __getitem__(self, key: bytes) -> bytes:
        if self._pending is not None and key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        try:
            return self._cache[key]
        except KeyError:
            pass
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        if len(self._cache) > _READ_CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = row[0]
        return row[0]  # type: ignore[no-any-return]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self._pending is None:
            with self.write():
                self[key] = value
            return
        self._pending[key] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        if key not in self:
            raise KeyError(key)
        if self._pending is None:
            with self.write():
                del self[key]
            return
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def query_one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return self._conn.execute(sql, args).fetchone()  # type: ignore[no-any-return]

    def genesis_hash(self) -> bytes | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'genesis_hash'").fetchone()
        return None if row is None else bytes(row[0])

    def mark(self, genesis_hash: bytes) -> None:
        """Stamp the file as ours, for the chain with ``genesis_hash``."""
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('genesis_hash', ?)", (genesis_hash,))
        self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        self._conn.execute("COMMIT")

    def add_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Queue index rows to be written in the current transaction."""
        self._rows.append((sql, rows))

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Buffer every write and commit them as ONE SQLite transaction (or none)."""
        if self._pending is not None:
            yield
            return
        self._pending, self._rows = {}, []
        try:
            yield
            pending, rows = self._pending, self._rows
            conn = self._conn
            with self.commit_lock, immediate(conn):
                conn.executemany(
                    "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                    [(k, v) for k, v in pending.items() if v is not None],
                )
                conn.executemany(
                    "DELETE FROM kv WHERE k = ?", [(k,) for k, v in pending.items() if v is None]
                )
                for sql, batch in rows:
                    conn.executemany(sql, batch)
            for k, v in pending.items():
                if v is None:
                    self._cache.pop(k, None)
                elif len(v) < 4096:
                    self._cache[k] = v
            self._maybe_checkpoint()
        finally:
            self._pending, self._rows = None, []

    def close(self) -> None:
        self._closing = True
        self._checkpoint_due.set()
        self._checkpointer.join(timeout=30)
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._conn.close()


class ReadOnlyKV(BaseDB):
    """A second, read-only view of the committed chain for one reader thread.

    Trie nodes are content-addressed and blocks only ever append, so RPC reads and
    ``eth_call`` run on their own connection without waiting for the miner.
    """

    def __init__(self, path: Path) -> None:
        self._conn = connect_read_only(path)

    def __getitem__(self, key: bytes) -> bytes:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]  # type: ignore[no-any-return]

    def _exists(self, key: bytes) -> bool:
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise ChainError("the read view of the chain cannot be written")

    def __delitem__(self, key: bytes) -> None:
        raise ChainError("the read view of the chain cannot be written")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, header TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    hash BLOB PRIMARY KEY, block INTEGER NOT NULL, idx INTEGER NOT NULL,
    tx TEXT NOT NULL, receipt TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_block ON txs (block, idx);
CREATE TABLE IF NOT EXISTS logs (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, address BLOB NOT NULL,
    topic0 BLOB, topic1 BLOB, topic2 BLOB, topic3 BLOB, log TEXT NOT NULL,
    PRIMARY KEY (block, log_index)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS logs_by_address ON logs (address, block);
CREATE INDEX IF NOT EXISTS logs_by_topic0 ON logs (topic0, block);
CREATE TABLE IF NOT EXISTS pool (
    hash BLOB PRIMARY KEY, seq INTEGER NOT NULL, sender BLOB NOT NULL, raw BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped (hash BLOB PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID;
"""


class ChainLock:
    """An exclusive ``fcntl`` lock beside the database: one writer per chain."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a+")  # noqa: SIM115 - held for the ledger's lifetime
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            pid = self._file.read().strip() or "?"
            self._file.close()
            raise ChainError(f"chain is in use by another process (pid {pid})") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        self._file.close()
