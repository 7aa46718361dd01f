from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from databright.storage import BlobStore, FsspecBlobStore, LocalBlobStore

STORE_KINDS = ["local", "memory", "file-url"]


def make_store(kind: str, tmp_path: Path) -> BlobStore:
    if kind == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if kind == "memory":
        return FsspecBlobStore(f"memory://databright-test-{uuid.uuid4().hex}")
    if kind == "file-url":
        return FsspecBlobStore((tmp_path / "fsblobs").as_uri())
    raise AssertionError(kind)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    s = make_store(request.param, tmp_path)
    yield s
    if isinstance(s, FsspecBlobStore) and request.param == "memory":
        s.fs.rm(s.root, recursive=True)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")
