"""Content-addressed blob stores.

A blob store maps CIDs (see :mod:`._cid`) to bytes. Writing is idempotent: the
CID is computed from the content, so putting the same bytes twice stores them
once. Every read re-hashes the bytes and raises :class:`IntegrityError` rather
than return data that does not match its CID, so a blob tampered with on disk or
in a bucket is never handed to a caller.

Backends:
- :class:`LocalBlobStore` — a directory, the default; atomic, durable writes.
  Inside :meth:`BlobStore.batch` small blobs go to pack files (see
  :mod:`._packs`): one fsync and one index transaction per step of a batch
  instead of a file, and two fsyncs, per blob.
- :class:`FsspecBlobStore` — any fsspec URL (``memory://``, ``file://``,
  ``s3://``, ``gcs://``, …).

Both shard blobs that have a file of their own as ``<root>/<d0>/<d1>/<cid>``
where ``d0 d1`` are the first two bytes of the sha-256 digest in hex, so no
directory grows beyond a few thousand entries. A local store reads both its
files and its packs, so a store written before packs existed reads as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import os
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._cid import CID, cid_from_digest, cid_of, digest_of_cid, is_cid
from ._errors import BlobNotFound, IntegrityError, StorageError
from ._packs import PACK_LIMIT, PackIndex, PackWriter, fsync_path

if TYPE_CHECKING:  # fsspec is for remote stores; a local one does without it
    import fsspec

_CHUNK = 1 << 20


def _hash_file(path: Path) -> CID:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return cid_from_digest(h.digest())


def _shard(cid: CID) -> tuple[str, str]:
    digest = digest_of_cid(cid)
    return digest[:1].hex(), digest[1:2].hex()


class BlobStore(ABC):
    """A content-addressed store: ``put`` bytes, get them back by CID, verified.

    Subclasses provide the raw primitives (``_exists``, ``_open``, ``_write``,
    ``_write_file``, ``_size``, ``_list``); hashing and verification live here
    so every backend checks integrity the same way.
    """

    # -- public interface -------------------------------------------------

    def put(self, data: bytes) -> CID:
        """Store ``data`` and return its CID; a no-op if it is already stored."""
        cid = cid_of(data)
        if not self._exists(cid):
            self._write(cid, bytes(data))
        return cid

    def put_file(self, path: str | os.PathLike[str]) -> CID:
        """Store the file at ``path`` (streamed, never read whole) and return its CID."""
        path = Path(path)
        if not path.is_file():
            raise StorageError(f"not a file: {path}")
        cid = _hash_file(path)
        if not self._exists(cid):
            self._write_file(cid, path)
        return cid

    def get(self, cid: str) -> bytes:
        """Return the bytes of ``cid``; BlobNotFound if absent, IntegrityError if tampered."""
        digest = digest_of_cid(cid)
        with self._open(CID(cid)) as f:
            data = f.read()
        if hashlib.sha256(data).digest() != digest:
            raise IntegrityError(f"blob {cid} is corrupt: its content does not match its CID")
        return data

    def get_file(self, cid: str, dest: str | os.PathLike[str]) -> Path:
        """Stream ``cid`` into ``dest``; ``dest`` only appears once the digest verified."""
        digest = digest_of_cid(cid)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, self._open(CID(cid)) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.digest() != digest:
                raise IntegrityError(f"blob {cid} is corrupt: its content does not match its CID")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group many puts into one durable commit; blobs are readable once it ends.

        Backends whose writes are already atomic objects (fsspec) need nothing;
        :class:`LocalBlobStore` defers its syncs to the end of the batch.
        """
        yield

    def has(self, cid: str) -> bool:
        """Return whether a blob named ``cid`` is stored (without verifying it)."""
        return self._exists(CID(cid)) if is_cid(cid) else False

    def size(self, cid: str) -> int:
        """Return the stored size of ``cid`` in bytes."""
        digest_of_cid(cid)
        return self._size(CID(cid))

    def cids(self) -> Iterator[CID]:
        """Iterate over the CIDs of all stored blobs, in sorted order."""
        return iter(sorted(CID(name) for name in self._list() if is_cid(name)))

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and self.has(cid)

    def __iter__(self) -> Iterator[CID]:
        return self.cids()

    # -- backend primitives ------------------------------------------------

    @abstractmethod
    def _exists(self, cid: CID) -> bool: ...

    @abstractmethod
    def _open(self, cid: CID) -> IO[bytes]:
        """Open the stored blob for reading; raise BlobNotFound if absent."""

    @abstractmethod
    def _write(self, cid: CID, data: bytes) -> None: ...

    @abstractmethod
    def _write_file(self, cid: CID, path: Path) -> None: ...

    @abstractmethod
    def _size(self, cid: CID) -> int: ...

    @abstractmethod
    def _list(self) -> Iterator[str]:
        """Yield the file names under the root (non-CID names are filtered out)."""


class _PendingWrites:
    """One batch's writes: its pack, and temp files (large blobs) waiting for their sync and rename."""

    def __init__(self, pack: PackWriter) -> None:
        self.pack = pack
        self.files: dict[CID, tuple[str, str]] = {}

    def __contains__(self, cid: CID) -> bool:
        return cid in self.pack.pending or cid in self.files

    def __len__(self) -> int:
        return len(self.pack.pending) + len(self.files)


class _BatchState(threading.local):
    # A batch belongs to the thread that opened it: another thread's puts (a
    # web request) stay immediately durable and readable.
    pending: _PendingWrites | None = None


class LocalBlobStore(BlobStore):
    """Blobs in a local directory; writes are atomic (temp file, fsync, rename).

    Outside a batch every blob gets its own file and costs two fsyncs (its
    data, then its directory entry). Inside :meth:`batch`, blobs up to
    ``PACK_LIMIT`` bytes are appended to the batch's pack file and indexed
    (see :mod:`._packs`); larger ones are written to temp files next to their
    final place. Every ``flush_every`` blobs and at the end the batch commits:
    the pack is fsynced and its rows indexed in one transaction; the temp
    files' data is synced at once, they are renamed into place and the renames
    synced once per filesystem (``syncfs`` on Linux; per-file and
    per-directory ``fsync`` elsewhere). A crash leaves each blob either absent
    or complete: no blob is named before its bytes are durable, and reads
    verify digests.
    """

    #: Blobs written between two commits of a batch: bounds a batch's memory.
    flush_every = 4096

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_str = str(self.root)
        self._batch = _BatchState()
        self._packs = PackIndex(self.root / "packs")

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_of(self, cid: str) -> Path:
        """Return where the blob ``cid`` has (or would have) a file of its own; a packed blob has none."""
        return Path(self._target(CID(cid), digest_of_cid(cid)))

    def _target(self, cid: CID, digest: bytes) -> str:
        # Plain strings: pathlib's joins cost more than the hashing of a small blob.
        return f"{self._root_str}/{digest[:1].hex()}/{digest[1:2].hex()}/{cid}"

    def put(self, data: bytes) -> CID:
        # The hot path of a table proposal: one hash, no CID decoded back, one stat.
        digest = hashlib.sha256(data).digest()
        cid = cid_from_digest(digest)
        data = bytes(data)
        target = self._target(cid, digest)
        pending = self._batch.pending
        if pending is not None and len(data) <= PACK_LIMIT:
            self._pack(pending, cid, target, data)
        else:
            self._store(cid, target, lambda f: f.write(data))
        return cid

    def put_file(self, path: str | os.PathLike[str]) -> CID:
        # A small file of a batch is read once and packed: one read, one hash, no CID decoded back.
        if self._batch.pending is not None:
            try:
                st = os.stat(path)
            except OSError:  # the general path reports it
                return super().put_file(path)
            if stat.S_ISREG(st.st_mode) and st.st_size <= PACK_LIMIT:
                with open(path, "rb") as f:
                    return self.put(f.read())
        return super().put_file(path)

    def _pack(self, pending: _PendingWrites, cid: CID, target: str, data: bytes) -> None:
        if cid in pending or self._packs.lookup(cid) is not None or os.path.isfile(target):
            return
        pending.pack.add(cid, data)
        if len(pending) >= self.flush_every:
            self._commit(pending)

    def _exists(self, cid: CID) -> bool:
        return self.path_of(cid).is_file() or self._packs.lookup(cid) is not None

    def _open(self, cid: CID) -> IO[bytes]:
        try:
            return open(self.path_of(cid), "rb")
        except FileNotFoundError:
            packed = self._packs.read(cid)
            if packed is None:
                raise BlobNotFound(f"no blob {cid} in {self.root}") from None
            return io.BytesIO(packed)

    def _size(self, cid: CID) -> int:
        try:
            return self.path_of(cid).stat().st_size
        except FileNotFoundError:
            where = self._packs.lookup(cid)
            if where is None:
                raise BlobNotFound(f"no blob {cid} in {self.root}") from None
            return where[2]

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if self._batch.pending is not None:  # nested: the outer batch commits
            yield
            return
        pending = self._batch.pending = _PendingWrites(PackWriter(self._packs))
        failed = True
        try:
            yield
            self._commit(pending)
            failed = False
        finally:
            self._batch.pending = None
            pending.pack.close(failed)
            for tmp, _ in pending.files.values():
                Path(tmp).unlink(missing_ok=True)

    def _commit(self, pending: _PendingWrites) -> None:
        pending.pack.commit()
        files = pending.files
        if not files:
            return
        if not _syncfs(self.root):
            for tmp, _ in files.values():
                fsync_path(tmp)
        # Only now, with every byte durable, do the names appear.
        for tmp, target in files.values():
            os.replace(tmp, target)
        renamed = list(files.values())
        files.clear()
        if not _syncfs(self.root):
            for directory in sorted({os.path.dirname(target) for _, target in renamed}):
                fsync_path(directory)

    def _store(self, cid: CID, target: str, fill: Callable[[IO[bytes]], object]) -> None:
        """Write a blob unless it is stored (or pending in this batch) already."""
        pending = self._batch.pending
        if (pending is not None and cid in pending) or os.path.isfile(target):
            return
        directory = os.path.dirname(target)
        tmp = f"{directory}/.tmp-{cid}-{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:  # the shard's first blob: trying first saves a mkdir per blob
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            with open(fd, "wb") as f:
                fill(f)
                if pending is None:
                    f.flush()
                    os.fsync(f.fileno())
            if pending is not None:
                pending.files[cid] = (tmp, target)
                if len(pending) >= self.flush_every:
                    self._commit(pending)
                return
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # Make the rename itself durable.
        fsync_path(directory)

    def _write(self, cid: CID, data: bytes) -> None:
        self._store(cid, str(self.path_of(cid)), lambda f: f.write(data))

    def _write_file(self, cid: CID, path: Path) -> None:
        pending = self._batch.pending
        if pending is not None and path.stat().st_size <= PACK_LIMIT:
            self._pack(pending, cid, str(self.path_of(cid)), path.read_bytes())
        else:
            self._store(cid, str(self.path_of(cid)), _copier(path))

    def _list(self) -> Iterator[str]:
        for shard in self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]"):
            for entry in shard.iterdir():
                yield entry.name
        yield from self._packs.cids()

    def cids(self) -> Iterator[CID]:
        # A blob may have both a file and a pack entry (two writers raced): list it once.
        return iter(sorted({CID(name) for name in self._list() if is_cid(name)}))


def _copier(path: Path) -> Callable[[IO[bytes]], None]:
    def copy(out: IO[bytes]) -> None:
        with open(path, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)

    return copy


_LIBC: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _syncfs(path: Path) -> bool:
    """Flush the whole filesystem holding ``path`` (Linux ``syncfs``); False where unavailable."""
    if _LIBC is None or not hasattr(_LIBC, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if _LIBC.syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise StorageError(f"cannot sync {path}: {os.strerror(error)}")
    finally:
        os.close(fd)
    return True


class FsspecBlobStore(BlobStore):
    """Blobs under any fsspec URL: ``memory://``, ``file://``, ``s3://bucket/prefix``, …"""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url
        import fsspec

        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.url!r})"

    def path_of(self, cid: str) -> str:
        """Return the backend path of the blob ``cid``."""
        d0, d1 = _shard(CID(cid))
        return f"{self.root}/{d0}/{d1}/{cid}"

    def _exists(self, cid: CID) -> bool:
        return bool(self.fs.isfile(self.path_of(cid)))

    def _open(self, cid: CID) -> IO[bytes]:
        try:
            f: IO[bytes] = self.fs.open(self.path_of(cid), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {cid} in {self.url}") from None
        return f

    def _size(self, cid: CID) -> int:
        try:
            return int(self.fs.size(self.path_of(cid)))
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {cid} in {self.url}") from None

    def _write(self, cid: CID, data: bytes) -> None:
        # Object stores write a whole object atomically; the parent makedirs
        # is a no-op there and needed for directory-like backends.
        path = self.path_of(cid)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)

    def _write_file(self, cid: CID, path: Path) -> None:
        target = self.path_of(cid)
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(path), target)

    def _list(self) -> Iterator[str]:
        if not self.fs.exists(self.root):
            return
        for p in self.fs.find(self.root):
            yield str(p).rsplit("/", 1)[-1]


def open_store(url_or_path: str | os.PathLike[str], **storage_options: Any) -> BlobStore:
    """Open the blob store at a local path, a ``file://`` URL, or any fsspec URL."""
    if isinstance(url_or_path, os.PathLike):
        return LocalBlobStore(url_or_path)
    if url_or_path.startswith("file://") and not storage_options:
        path = urllib.parse.urlparse(url_or_path).path
        return LocalBlobStore(urllib.request.url2pathname(path))
    if "://" in url_or_path or "::" in url_or_path:
        return FsspecBlobStore(url_or_path, **storage_options)
    return LocalBlobStore(url_or_path)
