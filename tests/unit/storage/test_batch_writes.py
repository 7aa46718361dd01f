from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.storage import (
    BlobNotFound,
    LocalBlobStore,
    Manifest,
    ManifestItem,
    ManifestWriter,
    MerkleRoot,
    MerkleTree,
    cid_from_digest,
    cid_of,
    digest_of_cid,
    merkle_root,
)
from databright.storage import _blobstore


class _Syncs:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, syncfs: bool) -> None:
        self.fsyncs = 0
        self.syncfs = 0
        real_fsync, real_syncfs = os.fsync, _blobstore._syncfs

        def fsync(fd: int) -> None:
            self.fsyncs += 1
            real_fsync(fd)

        def counted_syncfs(path: Path) -> bool:
            self.syncfs += 1
            return real_syncfs(path) if syncfs else False

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(_blobstore, "_syncfs", counted_syncfs)


def test_batch_packs_small_blobs_with_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    syncs = _Syncs(monkeypatch, syncfs=True)
    with store.batch():
        cids = [store.put(f"blob {i}".encode()) for i in range(200)]
    # The pack's directory entry, then its data: not a file (and two fsyncs) per blob.
    assert syncs.fsyncs == 2 and syncs.syncfs == 0
    assert {p.parent.name for p in store.root.rglob("*") if p.is_file()} == {"packs"}
    assert [store.get(c) for c in cids] == [f"blob {i}".encode() for i in range(200)]
    assert sorted(store.cids()) == sorted(set(cids))
    # Outside a batch a blob still costs its two fsyncs: data and directory entry.
    store.put(b"alone")
    assert syncs.fsyncs == 4 and store.path_of(cid_of(b"alone")).is_file()


def test_large_blobs_of_a_batch_sync_once_not_twice_per_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _blobstore._syncfs(tmp_path):
        pytest.skip("no syncfs on this platform")
    monkeypatch.setattr(_blobstore, "PACK_LIMIT", -1)  # every blob counts as too large to pack
    store = LocalBlobStore(tmp_path / "blobs")
    syncs = _Syncs(monkeypatch, syncfs=True)
    with store.batch():
        cids = [store.put(f"blob {i}".encode()) for i in range(200)]
    assert syncs.fsyncs == 0 and syncs.syncfs == 2  # data, then the renames
    assert [store.get(c) for c in cids] == [f"blob {i}".encode() for i in range(200)]


def test_batch_without_syncfs_fsyncs_files_then_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_blobstore, "PACK_LIMIT", -1)
    store = LocalBlobStore(tmp_path / "blobs")
    syncs = _Syncs(monkeypatch, syncfs=False)
    with store.batch():
        cids = [store.put(bytes([i])) for i in range(30)]
        store.put(bytes([0]))  # pending already: not written twice
    directories = {store.path_of(c).parent for c in cids}
    assert syncs.fsyncs == 30 + len(directories)
    assert sorted(store.cids()) == sorted(cids)


def test_blobs_of_a_batch_appear_only_when_it_commits(local_store: LocalBlobStore) -> None:
    with local_store.batch():
        cid = local_store.put(b"pending")
        assert not local_store.has(cid)
        with local_store.batch():  # nested: the outer batch commits
            inner = local_store.put(b"inner")
        assert not local_store.has(inner)
    assert local_store.get(cid) == b"pending" and local_store.get(inner) == b"inner"


def test_failed_batch_leaves_nothing(local_store: LocalBlobStore) -> None:
    with pytest.raises(RuntimeError), local_store.batch():
        cid = local_store.put(b"doomed")
        raise RuntimeError("bad input half-way")
    assert not local_store.has(cid)
    assert [p for p in local_store.root.rglob("*") if p.is_file()] == []


def test_large_batch_commits_in_bounded_steps(local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalBlobStore, "flush_every", 10)
    seen: list[int] = []
    with local_store.batch():
        for i in range(25):
            local_store.put(str(i).encode())
            seen.append(len(list(local_store.cids())))
    assert max(b - a for a, b in zip([0, *seen], seen, strict=False)) == 10
    assert seen[9] == 10 and seen[19] == 20 and seen[-1] == 20
    assert len(list(local_store.cids())) == 25


def test_other_threads_write_through_a_batch(local_store: LocalBlobStore) -> None:
    result: list[bool] = []
    with local_store.batch():
        local_store.put(b"mine")

        def other() -> None:
            result.append(local_store.has(local_store.put(b"theirs")))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert result == [True]


def test_crash_inside_a_batch_leaves_blobs_absent(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    script = textwrap.dedent(f"""
        import os
        from databright.storage import LocalBlobStore
        store = LocalBlobStore({str(root)!r})
        store.put(b"committed before")
        with store.batch():
            for i in range(50):
                store.put(b"x" * i)
            os._exit(9)  # killed mid-batch: no clean-up runs
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    store = LocalBlobStore(root)
    assert list(store.cids()) == [cid_of(b"committed before")]
    with pytest.raises(BlobNotFound):
        store.get(cid_of(b"x" * 3))


@pytest.mark.parametrize("n", [*range(1, 40), 64, 65, 127, 1000])
def test_streaming_root_equals_tree_root(n: int) -> None:
    leaves = [keccak(i.to_bytes(8, "big")) for i in range(n)]
    builder = MerkleRoot()
    for leaf in leaves:
        builder.add(leaf)
    assert builder.root == MerkleTree(leaves).root == merkle_root(iter(leaves))
    assert len(builder) == n


def test_manifest_writer_matches_manifest(local_store: LocalBlobStore) -> None:
    items = [ManifestItem(local_store.put(str(i).encode()), f"l{i % 3}", {"row": i}) for i in range(37)]
    with ManifestWriter() as writer:
        for item in items:
            writer.add(item)
        cid, root = writer.finish(local_store)
    manifest = Manifest(items)
    assert (cid, root) == (manifest.cid, manifest.root)
    assert Manifest.load(local_store, cid) == manifest


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32))
def test_cid_codec_matches_rfc4648_base32(digest: bytes) -> None:
    reference = "b" + base64.b32encode(bytes((1, 0x55, 0x12, 32)) + digest).decode().rstrip("=").lower()
    assert cid_from_digest(digest) == reference
    assert digest_of_cid(reference) == digest
    assert cid_of(digest) == cid_from_digest(hashlib.sha256(digest).digest())


def test_builders_report_progress(local_store: LocalBlobStore) -> None:
    import pandas as pd

    from databright.storage import manifest_from_table

    calls: list[tuple[int, int | None]] = []
    table = pd.DataFrame({"x": range(1200), "label": ["a", "b"] * 600})
    manifest, _ = manifest_from_table(local_store, table, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(512, 1200), (1024, 1200), (1200, 1200)]
    assert len(manifest) == 1200
