"""Dataset metadata blobs are anyone's upload: the index reads them without ever crashing."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import eth  # noqa: F401 - py-evm raises the recursion limit, as in every process holding the chain

from databright.storage import open_store
from databright.workspace import Workspace


def test_metadata_nested_too_deep_reads_as_unavailable_not_a_crash(tmp_path: Path) -> None:
    assert sys.getrecursionlimit() >= 10_000
    store = open_store(tmp_path / "blobs")
    deep = str(store.put(b'{"name": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"))
    good = str(store.put(b'{"name": "digits", "kind": "table"}'))
    holder = SimpleNamespace(store=store)
    assert Workspace._load_json(holder, deep) is None  # type: ignore[arg-type]
    assert Workspace._load_json(holder, good) == {"name": "digits", "kind": "table"}  # type: ignore[arg-type]
