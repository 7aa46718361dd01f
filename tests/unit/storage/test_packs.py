from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from databright.storage import BlobNotFound, IntegrityError, LocalBlobStore, StorageError, cid_of


def _packs(store: LocalBlobStore) -> list[Path]:
    return sorted((store.root / "packs").glob("*.pack"))


def test_a_store_with_files_of_its_own_reads_with_packs(local_store: LocalBlobStore) -> None:
    # Blobs written outside a batch have a file each: the layout of every store before packs.
    old = [local_store.put(f"old {i}".encode()) for i in range(5)]
    assert all(local_store.path_of(c).is_file() for c in old)
    with local_store.batch():
        new = [local_store.put(f"new {i}".encode()) for i in range(5)]
        assert local_store.put(b"old 0") == old[0]  # already stored as a file: not packed again
    assert not any(local_store.path_of(c).exists() for c in new)
    reopened = LocalBlobStore(local_store.root)
    assert sorted(reopened.cids()) == sorted(old + new)
    assert [reopened.get(c) for c in old + new] == [f"old {i}".encode() for i in range(5)] + [
        f"new {i}".encode() for i in range(5)
    ]
    assert reopened.size(new[0]) == len(b"new 0") and reopened.has(new[4]) and new[4] in reopened
    with sqlite3.connect(reopened.root / "packs" / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (5,)


def test_packed_blobs_stream_out_and_small_files_are_packed(local_store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "image.png"
    src.write_bytes(b"\x89PNG" + os.urandom(3000))
    with local_store.batch():
        cid = local_store.put_file(src)
    assert not local_store.path_of(cid).exists() and len(_packs(local_store)) == 1
    out = local_store.get_file(cid, tmp_path / "out" / "copy.png")
    assert out.read_bytes() == src.read_bytes()
    for not_a_file in (tmp_path, tmp_path / "missing.png"):
        with pytest.raises(StorageError, match="not a file"), local_store.batch():
            local_store.put_file(not_a_file)


def test_a_tampered_pack_is_reported_never_served(local_store: LocalBlobStore, tmp_path: Path) -> None:
    with local_store.batch():
        first = local_store.put(b"first" * 10)
        second = local_store.put(b"second" * 10)
    (pack,) = _packs(local_store)
    data = bytearray(pack.read_bytes())
    data[len(b"first" * 10) + 3] ^= 0xFF  # a byte of the second blob
    pack.write_bytes(bytes(data))
    assert local_store.get(first) == b"first" * 10
    with pytest.raises(IntegrityError, match=second):
        local_store.get(second)
    with pytest.raises(IntegrityError, match=second):
        local_store.get_file(second, tmp_path / "out.bin")
    pack.write_bytes(bytes(data[:20]))
    with pytest.raises(IntegrityError, match="truncated"):
        local_store.get(second)
    pack.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        local_store.get(first)


def test_readers_see_a_batch_step_only_once_committed(local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalBlobStore, "flush_every", 3)
    reader = LocalBlobStore(local_store.root)  # as the dashboard or the evaluator would open it
    seen = []
    with local_store.batch():
        for i in range(7):
            cid = local_store.put(f"item {i}".encode())
            seen.append(reader.has(cid))
    assert seen == [False, False, True, False, False, True, False]
    assert reader.get(cid_of(b"item 6")) == b"item 6"


def test_a_failed_batch_keeps_its_committed_steps(local_store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalBlobStore, "flush_every", 2)
    with pytest.raises(RuntimeError), local_store.batch():
        for i in range(3):
            local_store.put(bytes([i]) * 10)
        raise RuntimeError("bad row")
    assert sorted(local_store.cids()) == sorted([cid_of(bytes([0]) * 10), cid_of(bytes([1]) * 10)])
    assert not local_store.has(cid_of(bytes([2]) * 10))


def test_kill_9_while_packing_leaves_every_blob_absent_or_complete(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    script = textwrap.dedent(f"""
        import itertools
        from databright.storage import LocalBlobStore
        store = LocalBlobStore({str(root)!r})
        store.flush_every = 50
        store.put(b"committed before")
        with store.batch():
            for i in itertools.count():
                store.put(i.to_bytes(8, "big") * (1 + i % 300))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    index = root / "packs" / "index.sqlite"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if index.is_file() and len(list(LocalBlobStore(root).cids())) > 500:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the writer never committed")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    store = LocalBlobStore(root)
    cids = list(store.cids())
    assert cid_of(b"committed before") in cids
    for cid in cids:  # get verifies each digest
        store.get(cid)
    packed = len(cids) - 1
    assert packed % 50 == 0 and packed > 500
    expected = {cid_of(i.to_bytes(8, "big") * (1 + i % 300)) for i in range(packed)}
    assert expected <= set(cids)
    with pytest.raises(BlobNotFound):
        store.get(cid_of(packed.to_bytes(8, "big") * (1 + packed % 300)))
    # The store takes the next batch as usual, beside the killed writer's pack.
    with store.batch():
        after = store.put(b"after the crash")
    assert store.get(after) == b"after the crash"
