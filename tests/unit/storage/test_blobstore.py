from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from databright.storage import (
    BlobNotFound,
    BlobStore,
    FsspecBlobStore,
    IntegrityError,
    InvalidCID,
    LocalBlobStore,
    StorageError,
    cid_of,
    open_store,
)


def _tamper(store: BlobStore, cid: str) -> None:
    """Flip one bit of the stored blob behind the store's back."""
    if isinstance(store, LocalBlobStore):
        path = store.path_of(cid)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        assert isinstance(store, FsspecBlobStore)
        path = store.path_of(cid)
        data = bytearray(store.fs.cat_file(path))
        data[len(data) // 2] ^= 0x01
        store.fs.pipe_file(path, bytes(data))


def test_put_get_round_trip(store: BlobStore) -> None:
    cid = store.put(b"hello world\n")
    assert cid == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert store.get(cid) == b"hello world\n"
    assert store.has(cid) and cid in store
    assert store.size(cid) == 12


def test_empty_blob(store: BlobStore) -> None:
    cid = store.put(b"")
    assert store.get(cid) == b""
    assert store.size(cid) == 0


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(b"same bytes")
    second = store.put(b"same bytes")
    assert first == second
    assert list(store.cids()) == [first]


def test_listing(store: BlobStore) -> None:
    cids = {store.put(bytes([i]) * i) for i in range(20)}
    assert set(store.cids()) == cids
    assert list(store) == sorted(cids)


def test_missing_blob(store: BlobStore) -> None:
    cid = cid_of(b"never stored")
    assert not store.has(cid)
    with pytest.raises(BlobNotFound, match=cid):
        store.get(cid)
    with pytest.raises(BlobNotFound):
        store.size(cid)


def test_invalid_cid_is_rejected(store: BlobStore) -> None:
    with pytest.raises(InvalidCID):
        store.get("not-a-cid")
    assert not store.has("not-a-cid")
    assert "not-a-cid" not in store


def test_tampered_blob_raises(store: BlobStore, tmp_path: Path) -> None:
    cid = store.put(b"precious data" * 100)
    _tamper(store, cid)
    with pytest.raises(IntegrityError, match=cid):
        store.get(cid)
    dest = tmp_path / "out" / "restored.bin"
    with pytest.raises(IntegrityError, match=cid):
        store.get_file(cid, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_put_file_streams_large_file(store: BlobStore, tmp_path: Path) -> None:
    # Larger than one IPFS block and than the streaming chunk: the CID is still
    # the raw sha-256 CID of the whole content.
    data = os.urandom(3 * (1 << 20) + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    cid = store.put_file(src)
    assert cid == cid_of(data)
    assert store.put_file(src) == cid
    assert store.get(cid) == data
    out = store.get_file(cid, tmp_path / "copy.bin")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_put_file_rejects_non_file(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a file"):
        store.put_file(tmp_path)


def test_local_layout_is_sharded(local_store: LocalBlobStore) -> None:
    cid = local_store.put(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert local_store.path_of(cid) == local_store.root / digest[:2] / digest[2:4] / cid
    assert local_store.path_of(cid).read_bytes() == b"abc"


def test_local_write_leaves_no_temp_files(local_store: LocalBlobStore) -> None:
    for i in range(5):
        local_store.put(b"x" * i)
    names = [p.name for p in local_store.root.rglob("*") if p.is_file()]
    assert all(n.startswith("bafkrei") for n in names) and len(names) == 5


def test_local_failed_write_is_atomic(
    local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        local_store.put(b"half written")
    monkeypatch.undo()
    cid = cid_of(b"half written")
    assert not local_store.has(cid)
    assert [p for p in local_store.root.rglob("*") if p.is_file()] == []
    assert local_store.put(b"half written") == cid
    assert local_store.get(cid) == b"half written"


def test_put_does_not_rewrite_existing(local_store: LocalBlobStore) -> None:
    cid = local_store.put(b"keep me")
    before = local_store.path_of(cid).stat().st_mtime_ns
    os.utime(local_store.path_of(cid), ns=(1, 1))
    local_store.put(b"keep me")
    assert local_store.path_of(cid).stat().st_mtime_ns == 1 != before


def test_stray_files_are_not_listed(local_store: LocalBlobStore) -> None:
    cid = local_store.put(b"real")
    (local_store.path_of(cid).parent / "notes.txt").write_text("hi")
    assert list(local_store.cids()) == [cid]


def test_open_store_picks_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "a"), LocalBlobStore)
    assert isinstance(open_store(str(tmp_path / "b")), LocalBlobStore)
    local = open_store((tmp_path / "c d%").as_uri())
    assert isinstance(local, LocalBlobStore) and local.root == (tmp_path / "c d%").resolve()
    mem = open_store("memory://databright-open-store-test")
    assert isinstance(mem, FsspecBlobStore)
    cid = mem.put(b"m")
    assert open_store("memory://databright-open-store-test").get(cid) == b"m"
    mem.fs.rm(mem.root, recursive=True)


def test_file_url_and_local_share_layout(tmp_path: Path) -> None:
    fs_store = FsspecBlobStore((tmp_path / "shared").as_uri())
    cid = fs_store.put(b"interoperable")
    assert LocalBlobStore(tmp_path / "shared").get(cid) == b"interoperable"
