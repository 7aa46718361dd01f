"""A dataset of a million items: its page and API cost what they cost at a thousand; its export streams.

The home's index is copied and grown in SQL with extra accepted items of the
seed entry (their blobs real PNGs in the home's store), so the chain, the blob
store and the app are the real ones and only the index is large.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from databright import export
from databright.demo import write_png
from databright.export import export_dataset
from databright.web import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace

DISTINCT = 64  # distinct images the grown items cycle through


def _grow(home: Path, index: Path, items: int) -> None:
    """Copy the home's index to ``index`` and give dataset 1 ``items`` more accepted items (labels a and b)."""
    [source] = home.glob("index-*.sqlite")
    with sqlite3.connect(source) as src, sqlite3.connect(index) as dst:
        src.backup(dst)
    ws = Workspace(home)
    rng = np.random.default_rng(7)
    cids = [ws.store.put(write_png(rng.integers(0, 256, (8, 8), dtype=np.uint8))) for _ in range(DISTINCT)]
    ws.close()
    with sqlite3.connect(index) as db:
        db.execute("CREATE TEMP TABLE blobs (k INTEGER PRIMARY KEY, cid TEXT)")
        db.executemany("INSERT INTO blobs VALUES (?, ?)", enumerate(cids))
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)"
            " INSERT INTO items (dataset_id, proposal_id, position, cid, label, metadata_json, accepted)"
            " SELECT 1, 1, 1000 + i, (SELECT cid FROM blobs WHERE k = i % ?),"
            " CASE i % 2 WHEN 0 THEN 'a' ELSE 'b' END, '{\"filename\": \"grown.png\"}', 1 FROM n",
            (items, DISTINCT),
        )
        db.execute("UPDATE datasets SET item_count = item_count + ? WHERE dataset_id = 1", (items,))
        for label, count in (("a", (items + 1) // 2), ("b", items // 2)):
            db.execute("UPDATE label_counts SET count = count + ? WHERE dataset_id = 1 AND label = ?", (count, label))


@pytest.fixture()
def grown(home: Path, app_ws: Workspace, tmp_path: Path) -> Iterator[dict[int, Workspace]]:
    spaces: dict[int, Workspace] = {}

    def make(n: int) -> Workspace:
        path = tmp_path / f"index-{n}.sqlite"
        _grow(home, path, n)
        spaces[n] = Workspace(home, index_url=f"sqlite:///{path}")
        spaces[n].__dict__["ledger"] = app_ws.ledger  # the embedded chain: one opener per process
        return spaces[n]

    yield make  # type: ignore[misc]
    for ws in spaces.values():
        ws.close()


def _median(client: TestClient, url: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        reply = client.get(url)
        times.append(time.perf_counter() - start)
        assert reply.status_code == 200, reply.text
    return sorted(times)[runs // 2]


def test_the_dataset_page_costs_the_same_at_a_thousand_and_a_million_items(grown: dict[int, Workspace]) -> None:
    costs: dict[int, dict[str, float]] = {}
    for n in (1_000, 1_000_000):
        ws = grown(n)  # type: ignore[operator]
        app = create_app(ws, secret="test-secret", allowed_hosts=[*DEFAULT_HOSTS, "testserver"])
        with TestClient(app) as client:
            first = client.get("/api/v1/datasets/1/items", params={"limit": 100})
            assert first.status_code == 200 and len(first.json()) == 100
            page = client.get("/datasets/1").text
            assert f"{n + 4:,}" in page  # the count, from the counter
            deep = first.headers["x-next-cursor"]
            for _ in range(3):  # a few pages in: keyset, not OFFSET
                deep = client.get("/api/v1/datasets/1/items", params={"limit": 100, "cursor": deep}).headers[
                    "x-next-cursor"]
            costs[n] = {
                "page": _median(client, "/datasets/1"),
                "api first": _median(client, "/api/v1/datasets/1/items?limit=100"),
                "api deep": _median(client, f"/api/v1/datasets/1/items?limit=100&cursor={deep}"),
            }
    for what, small in costs[1_000].items():
        # Generous for a shared 2-core machine; loading every item made this ratio ~1000.
        assert costs[1_000_000][what] < 4 * small + 0.05, (what, costs)


def _export_peak(ws: Workspace, out: Path) -> tuple[int, int]:
    tracemalloc.start()
    result = export_dataset(ws, 1, out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result["items"], peak


def test_export_memory_does_not_grow_with_the_dataset(grown: dict[int, Workspace], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "ROW_GROUP", 100)  # both sizes many row groups, in a test-sized time
    small_items, small = _export_peak(grown(1_000), tmp_path / "small")  # type: ignore[operator]
    large_items, large = _export_peak(grown(8_000), tmp_path / "large")  # type: ignore[operator]
    assert (small_items, large_items) == (1_004, 8_004)
    parquet = pq.ParquetFile(tmp_path / "large" / "items.parquet")
    assert parquet.metadata.num_rows == 8_004 and parquet.metadata.num_row_groups == 81  # written as read
    assert large < 1.5 * small + 2 * 2**20, (small, large)  # a whole-table export grew tenfold here


def test_the_export_loads_in_datasets_with_its_image_feature(app_ws: Workspace, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    export_dataset(app_ws, 1, tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "out" / "items.parquet", elsewhere / "shapes.parquet")
    monkeypatch.chdir(elsewhere)  # the images travel inside the file
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    loaded = datasets.load_dataset("parquet", data_files="shapes.parquet", split="train")
    assert isinstance(loaded.features["file"], datasets.Image)
    assert isinstance(loaded.features["label"], datasets.ClassLabel) and loaded.features["label"].names == ["a", "b"]
    image = loaded[0]["file"]
    assert image.size == (8, 8) and loaded.num_rows == 4


def test_the_download_is_the_export_sent_in_row_groups(client: TestClient, app_ws: Workspace, tmp_path: Path) -> None:
    export_dataset(app_ws, 1, tmp_path / "out")
    with client.stream("GET", "/api/v1/datasets/1/parquet") as reply:
        assert reply.status_code == 200 and "content-length" not in reply.headers  # streamed
        body = b"".join(reply.iter_bytes())
    downloaded = pq.read_table(io.BytesIO(body))
    exported = pq.read_table(tmp_path / "out" / "items.parquet")
    assert downloaded.equals(exported) and downloaded.schema.metadata == exported.schema.metadata
