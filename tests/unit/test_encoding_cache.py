from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from databright import evaluator
from databright.ml import ModelSpec
from databright.storage import LocalBlobStore, Manifest, ManifestItem
from tests.unit.ml._png import encode_png


def test_encodings_are_computed_once_and_kept_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    rng = np.random.default_rng(0)
    items = [ManifestItem(store.put(encode_png(rng.integers(0, 256, (12, 12), dtype=np.uint8))), "ab"[i % 2])
             for i in range(10)]
    cid = Manifest(items).save(store)
    spec = ModelSpec(kind="mlp", input="image", image_shape=(1, 6, 6), classes=("a", "b"))
    expected = evaluator.encode_items(spec, [store.get(i.cid) for i in items])

    calls: list[int] = []
    real = evaluator.encode_items

    def counting(spec: ModelSpec, blobs: list[bytes]) -> np.ndarray:
        calls.append(len(blobs))
        return real(spec, blobs)

    monkeypatch.setattr(evaluator, "encode_items", counting)
    monkeypatch.setattr(evaluator, "_ENCODE_CHUNK", 4)
    first = evaluator._Items(store, tmp_path / "cache").load(spec, cid)
    assert calls == [4, 4, 2]  # in chunks: memory does not grow with the manifest
    again = evaluator._Items(store, tmp_path / "cache").load(spec, cid)  # a restarted evaluator
    assert calls == [4, 4, 2]
    np.testing.assert_array_equal(first[1][0], expected)
    np.testing.assert_array_equal(again[1][0], expected)
    assert isinstance(again[1][0], evaluator.DiskRows) and again[1][0].dtype == np.float32
    np.testing.assert_array_equal(again[1][1], [0, 1] * 5)
