from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from databright.storage import (
    BlobStore,
    LocalBlobStore,
    Manifest,
    ManifestError,
    canonical_json,
    cid_of,
    manifest_from_folder,
    manifest_from_table,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(b"A-bytes")
    (root / "b.png").write_bytes(b"B-bytes")
    (root / "sub" / "c.png").write_bytes(b"C-bytes")
    return root


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_folder_manifest(store: BlobStore, folder: Path, tmp_path: Path) -> None:
    labels = _csv(tmp_path, "file,label\nb.png,dog\na.png,cat\nsub/c.png,chat 🐈\n")
    manifest, cid = manifest_from_folder(store, folder, labels)
    assert manifest.item_cids == [cid_of(b"B-bytes"), cid_of(b"A-bytes"), cid_of(b"C-bytes")]
    assert manifest.labels == ["dog", "cat", "chat 🐈"]
    assert [item.metadata for item in manifest] == [
        {"filename": "b.png"},
        {"filename": "a.png"},
        {"filename": "sub/c.png"},
    ]
    assert store.get(manifest.item_cids[2]) == b"C-bytes"
    assert cid == manifest.cid and Manifest.load(store, cid) == manifest
    # Same inputs, same manifest CID.
    assert manifest_from_folder(store, folder, labels)[1] == cid


def test_folder_custom_columns_and_bom(
    local_store: LocalBlobStore, folder: Path, tmp_path: Path
) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("\ufeffname,class,extra\na.png,1,x\n".encode())
    manifest, _ = manifest_from_folder(
        local_store, folder, path, file_column="name", label_column="class"
    )
    assert manifest.labels == ["1"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("file,label\n", "header but no rows"),
        ("name,label\na.png,cat\n", "no column 'file'; columns: name, label"),
        ("file,class\na.png,cat\n", "no column 'label'; columns: file, class"),
        ("file,label\na.png,cat\nmissing.png,dog\n", "line 3: no file 'missing.png'"),
        (
            "file,label\na.png,cat\nb.png,dog\na.png,cow\n",
            "line 4: duplicate row for 'a.png' \\(first on line 2\\)",
        ),
        ("file,label\na.png,cat\n./a.png,cat\n", "line 3: duplicate"),
        ("file,label\n../secret,cat\n", "line 2: '../secret' points outside"),
        ("file,label\nsub,cat\n", "line 2: no file 'sub'"),
        ("file,label\na.png\n", "line 2: missing file name or label"),
        ("file,label\n,cat\n", "line 2: missing file name or label"),
    ],
)
def test_folder_manifest_errors(
    local_store: LocalBlobStore, folder: Path, tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        manifest_from_folder(local_store, folder, _csv(tmp_path, text))


def test_folder_missing_inputs(local_store: LocalBlobStore, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read labels CSV"):
        manifest_from_folder(local_store, folder, tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="not a folder"):
        manifest_from_folder(local_store, tmp_path / "nofolder", _csv(tmp_path, "file,label\n"))


TABLE = pd.DataFrame(
    {
        "x": [1.5, 2.0, float("nan")],
        "n": [1, 2, 3],
        "name": ["a", "b", "é"],
        "label": [0, 1, 0],
    }
)


def _expected_rows() -> list[bytes]:
    return [
        canonical_json({"n": 1, "name": "a", "x": 1.5}),
        canonical_json({"n": 2, "name": "b", "x": 2.0}),
        canonical_json({"n": 3, "name": "é", "x": None}),
    ]


@pytest.mark.parametrize("source", ["frame", "csv", "parquet"])
def test_table_manifest(store: BlobStore, tmp_path: Path, source: str) -> None:
    table: Path | pd.DataFrame = TABLE
    if source == "csv":
        table = tmp_path / "t.csv"
        TABLE.to_csv(table, index=False)
    elif source == "parquet":
        table = tmp_path / "t.parquet"
        TABLE.to_parquet(table, index=False)
    manifest, cid = manifest_from_table(store, table)
    rows = _expected_rows()
    assert manifest.item_cids == [cid_of(r) for r in rows]
    assert [store.get(c) for c in manifest.item_cids] == rows
    assert manifest.labels == ["0", "1", "0"]
    assert [item.metadata for item in manifest] == [{"row": 0}, {"row": 1}, {"row": 2}]
    assert Manifest.load(store, cid) == manifest
    assert json.loads(rows[0]) == {"n": 1, "name": "a", "x": 1.5}


def test_table_same_content_same_cid(local_store: LocalBlobStore, tmp_path: Path) -> None:
    csv_path, pq_path = tmp_path / "t.csv", tmp_path / "t.parquet"
    TABLE.to_csv(csv_path, index=False)
    TABLE.to_parquet(pq_path, index=False)
    assert (
        manifest_from_table(local_store, csv_path)[1]
        == manifest_from_table(local_store, pq_path)[1]
    )
    # Column order does not change item bytes.
    reordered = TABLE[["label", "name", "x", "n"]]
    assert (
        manifest_from_table(local_store, reordered)[1] == manifest_from_table(local_store, TABLE)[1]
    )


def test_table_label_column_and_features(local_store: LocalBlobStore) -> None:
    manifest, _ = manifest_from_table(
        local_store, TABLE, label_column="name", feature_columns=["n"]
    )
    assert manifest.labels == ["a", "b", "é"]
    assert local_store.get(manifest.item_cids[0]) == b'{"n":1}'


def test_table_errors(local_store: LocalBlobStore, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no label column 'target'; columns: x, n, name, label"):
        manifest_from_table(local_store, TABLE, label_column="target")
    with pytest.raises(ManifestError, match="no feature column 'zz'"):
        manifest_from_table(local_store, TABLE, feature_columns=["zz"])
    with pytest.raises(ManifestError, match="no rows"):
        manifest_from_table(local_store, TABLE.iloc[:0])
    # rows count from 1 without a file; a CSV names the line, as the labels CSV of a folder does
    with pytest.raises(ManifestError, match="^row 2: missing label"):
        manifest_from_table(local_store, pd.DataFrame({"x": [1, 2], "label": ["a", None]}))
    with pytest.raises(ManifestError, match="^row 1: column 'x' holds a"):
        manifest_from_table(local_store, pd.DataFrame({"x": [object()], "label": ["a"]}))
    gappy = tmp_path / "gappy.csv"
    gappy.write_text('x,label\n1,a\n\n"2",\n')
    with pytest.raises(ManifestError, match="^gappy.csv line 4: missing label"):
        manifest_from_table(local_store, gappy)
    pd.DataFrame({"x": [1, 2], "label": ["a", None]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ManifestError, match="^t.parquet row 2: missing label"):
        manifest_from_table(local_store, tmp_path / "t.parquet")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="is empty"):
        manifest_from_table(local_store, empty)
    with pytest.raises(ManifestError, match="no such table"):
        manifest_from_table(local_store, tmp_path / "missing.csv")
    with pytest.raises(ManifestError, match="unsupported table format '.xlsx'"):
        manifest_from_table(local_store, tmp_path / "t.xlsx")


def test_table_value_types(local_store: LocalBlobStore) -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-02T03:04:05"]),
            "flag": [True],
            "maybe": pd.array([None], dtype="Int64"),
            "label": ["y"],
        }
    )
    manifest, _ = manifest_from_table(local_store, frame)
    assert json.loads(local_store.get(manifest.item_cids[0])) == {
        "flag": True,
        "maybe": None,
        "when": "2024-01-02T03:04:05",
    }
