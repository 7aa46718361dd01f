"""Importers over small real files in each format, built here (nothing downloaded)."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from databright.storage import LocalBlobStore, ManifestError, import_items, manifest_from_source

RNG = np.random.default_rng(0)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _pixels(item_data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(item_data)).convert("RGB"))


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _cifar10(path: Path, per_batch: int = 6) -> np.ndarray:
    """A CIFAR-10 python archive in the original layout: bytes keys, protocol 2."""
    images = RNG.integers(0, 256, (3 * per_batch, 3072), dtype=np.uint8)
    names = [b"airplane", b"automobile", b"bird"]
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "cifar-10-batches-py/batches.meta",
             pickle.dumps({b"label_names": names, b"num_cases_per_batch": per_batch}, protocol=2))
        for b, name in enumerate(["data_batch_1", "data_batch_2", "test_batch"]):
            rows = images[b * per_batch : (b + 1) * per_batch]
            batch = {b"batch_label": name.encode(), b"labels": [i % 3 for i in range(per_batch)], b"data": rows,
                     b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
            _add(archive, f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2))
    return images


def test_cifar10_archive(tmp_path: Path) -> None:
    images = _cifar10(tmp_path / "cifar-10-python.tar.gz")
    items = list(import_items(tmp_path / "cifar-10-python.tar.gz", "cifar"))
    assert len(items) == 12
    assert [i.label for i in items[:4]] == ["airplane", "automobile", "bird", "airplane"]
    assert items[7].metadata == {"filename": "data_batch_2_1.png"}
    assert isinstance(items[7].data, bytes)
    np.testing.assert_array_equal(_pixels(items[7].data), images[7].reshape(3, 32, 32).transpose(1, 2, 0))
    test = list(import_items(tmp_path / "cifar-10-python.tar.gz", "cifar", split="test"))
    assert len(test) == 6
    assert isinstance(test[0].data, bytes)
    np.testing.assert_array_equal(_pixels(test[0].data), images[12].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar100_extracted_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"apple", b"bear"],
                                                b"coarse_label_names": [b"fruit", b"mammal"]}, protocol=2))
    data = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
    (folder / "train").write_bytes(pickle.dumps({b"data": data, b"fine_labels": [1, 0, 1, 1],
                                                 b"coarse_labels": [1, 0, 1, 1]}, protocol=2))
    items = list(import_items(folder, "cifar"))
    assert [i.label for i in items] == ["bear", "apple", "bear", "bear"]


class _Call:
    def __init__(self, function: object, args: tuple[object, ...]) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.function, self.args)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "ndarray call", "object array"])
def test_malicious_cifar_pickle_is_refused(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}, protocol=2))
    if payload == "os.system":
        evil: object = {b"data": _Exploit(marker), b"labels": [0]}
    elif payload == "ndarray call":
        evil = {b"data": _Call(np.ndarray, ((3,), "O")), b"labels": [0]}
    else:
        evil = {b"data": np.array([None, "x"], dtype=object), b"labels": [0, 0]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ManifestError, match="data_batch_1: not a CIFAR batch"):
        list(import_items(folder, "cifar"))
    assert not marker.exists()


def test_imagefolder_tree(tmp_path: Path) -> None:
    for cls, count in (("cat", 2), ("dog", 3)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "train" / cls / f"{i}.png").write_bytes(_png(RNG.integers(0, 256, (5, 5, 3), dtype=np.uint8)))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    store = LocalBlobStore(tmp_path / "blobs")
    manifest, cid = manifest_from_source(store, tmp_path, "imagefolder", split="train")
    assert manifest.labels == ["cat", "cat", "dog", "dog", "dog"]
    assert manifest[2].metadata == {"filename": "dog/0.png"}
    assert store.get(manifest[2].cid) == (tmp_path / "train" / "dog" / "0.png").read_bytes()
    assert store.has(cid)
    with pytest.raises(ManifestError, match="no class folders"):
        list(import_items(tmp_path / "train" / "cat", "imagefolder"))


def _hf_dataset():  # type: ignore[no-untyped-def]
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["no", "yes"])})
    images = [Image.fromarray(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)) for _ in range(5)]
    return datasets.Dataset.from_dict({"image": images, "label": [0, 1, 1, 0, 1]}, features=features)


def test_hugging_face_parquet_and_save_to_disk(tmp_path: Path) -> None:
    dataset = _hf_dataset()
    dataset.to_parquet(str(tmp_path / "train.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    for source, fmt in ((tmp_path / "train.parquet", "parquet"), (tmp_path / "saved", "hf-disk")):
        items = list(import_items(source, fmt))
        assert [i.label for i in items] == ["no", "yes", "yes", "no", "yes"]
        assert isinstance(items[3].data, bytes)
        np.testing.assert_array_equal(_pixels(items[3].data), np.asarray(dataset[3]["image"].convert("RGB")))
        assert items[3].metadata["row"] == 3


def test_webdataset_shards(tmp_path: Path) -> None:
    pixels = [RNG.integers(0, 256, (3, 3, 3), dtype=np.uint8) for _ in range(4)]
    for shard in range(2):
        with tarfile.open(tmp_path / f"shard-{shard:04d}.tar", "w") as archive:
            for i in range(2):
                key = f"s{shard}/{i:06d}"
                _add(archive, f"{key}.png", _png(pixels[2 * shard + i]))
                if i == 0:
                    _add(archive, f"{key}.cls", b"cat\n")
                else:
                    _add(archive, f"{key}.json", json.dumps({"label": "dog"}).encode())
    items = list(import_items(tmp_path, "webdataset"))
    assert [i.label for i in items] == ["cat", "dog", "cat", "dog"]
    assert items[3].metadata == {"filename": "s1/000001.png"}
    assert isinstance(items[3].data, bytes)
    np.testing.assert_array_equal(_pixels(items[3].data), pixels[3])
    with tarfile.open(tmp_path / "bad.tar", "w") as archive:
        _add(archive, "x/1.png", _png(pixels[0]))
    with pytest.raises(ManifestError, match="no .cls or .json label"):
        list(import_items(tmp_path / "bad.tar", "webdataset"))


def test_unknown_format_and_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="unknown format 'zip'"):
        import_items(tmp_path, "zip")
    with pytest.raises(ManifestError, match="no such file or folder"):
        import_items(tmp_path / "nope", "cifar")
