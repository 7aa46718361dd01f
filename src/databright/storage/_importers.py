"""Importers: datasets in the formats they ship in, read where they lie, streamed.

Each importer yields :class:`ImportedItem` rows (the item's bytes or a file to
copy, its label, its metadata) one at a time; :func:`manifest_from_source`
stores them in one durable batch and builds the manifest. Formats:

- ``imagefolder`` — ``root/<class>/<file>``, the ImageNet layout; classes and
  files in sorted order.
- ``cifar`` — the CIFAR-10 / CIFAR-100 "python version" archives (``.tar.gz``
  or the extracted folder), training batches by default. Their batches are
  pickles: they are read with an unpickler that builds only dicts, lists,
  tuples, strings, bytes, numbers and plain NumPy arrays and refuses every other
  global, so a tampered archive cannot run code. Each image is stored as a
  PNG (Pillow, default compression).
- ``parquet`` — a Hugging Face dataset exported to Parquet (an ``image``
  column of ``{"bytes", "path"}`` and a ``label`` column, class names from the
  schema's ``huggingface`` metadata), read one row group at a time.
- ``hf-disk`` — a folder written by ``datasets.Dataset.save_to_disk`` (Arrow
  stream files plus ``dataset_info.json``), read one record batch at a time.
- ``webdataset`` — tar shards whose members share a key per sample
  (``000123.png`` + ``000123.cls``), read member by member.

Text formats (``text``, ``opennmt``, ``jsonl``, ``text-csv``) are read by
:mod:`._text_import`.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from ._blobstore import BlobStore
from ._cid import CID
from ._errors import ManifestError
from ._manifest import Manifest, ManifestItem, Progress, _build

if TYPE_CHECKING:  # numpy loads only when a CIFAR archive is read
    import numpy as np

__all__ = ["FORMATS", "ImportedItem", "SafeUnpickler", "import_items", "manifest_from_source"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass(frozen=True)
class ImportedItem:
    """One item of an imported dataset: its bytes (or a file holding them) and label."""

    data: bytes | Path
    label: str
    metadata: dict[str, Any] = field(default_factory=dict)


# -- the restricted unpickler -------------------------------------------------


class _NDArray:
    """Stands for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` accepts it,
    so the pickle cannot call the real constructor with arguments of its own."""


def _reconstruct(cls: Any, shape: Any, dtype_code: Any) -> Any:
    if cls is not _NDArray or dtype_code != b"b":
        raise pickle.UnpicklingError("only plain NumPy arrays may be reconstructed")
    import numpy as np

    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype[Any]:
    import numpy as np

    dtype: np.dtype[Any] = np.dtype(spec)
    if dtype.hasobject or dtype.fields is not None:
        raise pickle.UnpicklingError(f"refusing a NumPy dtype of Python objects or records ({dtype})")
    return dtype


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles write bytes as _codecs.encode(str, "latin1"); nothing else is allowed.
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}


class SafeUnpickler(pickle.Unpickler):
    """Builds builtin containers, str, bytes, numbers and plain NumPy arrays; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle") from None


def safe_load(f: IO[bytes], where: str) -> Any:
    try:
        return SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{where}: not a CIFAR batch this reader accepts ({exc})") from None


# -- formats ------------------------------------------------------------------


def _imagefolder(root: Path, split: str | None) -> Iterator[ImportedItem]:
    if split:
        root = root / split
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise ManifestError(f"{root} holds no class folders (expected {root}/<class>/<image>)")
    for folder in classes:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                rel = path.relative_to(root).as_posix()
                yield ImportedItem(path, folder.name, {"filename": rel})


def _png(pixels: np.ndarray[Any, Any]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _cifar_members(source: Path) -> Iterator[tuple[str, IO[bytes]]]:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                with open(path, "rb") as f:
                    yield path.name, f
        return
    try:
        archive = tarfile.open(source, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ManifestError(f"{source} is not a CIFAR archive: {exc}") from None
    with archive:
        for member in archive:
            data = archive.extractfile(member) if member.isfile() else None
            if data is not None:
                yield PurePosixPath(member.name).name, data


def _cifar(source: Path, split: str | None) -> Iterator[ImportedItem]:
    want = split or "train"
    if want not in ("train", "test"):
        raise ManifestError(f"CIFAR has splits train and test, not {want!r}")
    names: list[str] = []
    batches: list[tuple[str, dict[bytes, Any]]] = []
    found = False
    for name, f in _cifar_members(source):
        if name in ("batches.meta", "meta"):
            meta = safe_load(f, name)
            key = b"fine_label_names" if b"fine_label_names" in meta else b"label_names"
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]
            for held_name, held in batches:  # batches before the meta in the archive
                yield from _cifar_batch(held_name, held, names)
            batches.clear()
            continue
        is_train = name.startswith("data_batch") or name == "train"
        is_test = name in ("test_batch", "test")
        if not ((want == "train" and is_train) or (want == "test" and is_test)):
            continue
        found = True
        batch = safe_load(f, name)
        if names:
            yield from _cifar_batch(name, batch, names)
        else:
            batches.append((name, batch))
    if not found:
        raise ManifestError(f"{source} holds no CIFAR {want} batches")
    if batches:
        raise ManifestError(f"{source} has no batches.meta or meta file naming the classes")


def _cifar_batch(name: str, batch: dict[bytes, Any], names: list[str]) -> Iterator[ImportedItem]:
    if not isinstance(batch, dict) or b"data" not in batch:
        raise ManifestError(f"{name}: not a CIFAR batch (no data)")
    import numpy as np

    data = np.asarray(batch[b"data"])
    labels = batch.get(b"labels", batch.get(b"fine_labels"))
    files = batch.get(b"filenames", [])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels is None:
        raise ManifestError(f"{name}: expected uint8 rows of 3072 pixels and labels")
    if len(labels) != len(data):
        raise ManifestError(f"{name}: {len(data)} images but {len(labels)} labels")
    for i, (row, label) in enumerate(zip(data, labels, strict=True)):
        if not 0 <= int(label) < len(names):
            raise ManifestError(f"{name} image {i}: label {label} has no class name")
        pixels = row.reshape(3, 32, 32).transpose(1, 2, 0)
        filename = files[i].decode() if i < len(files) and isinstance(files[i], bytes) else f"{name}/{i}.png"
        yield ImportedItem(_png(pixels), names[int(label)], {"filename": filename})


def _class_names(features: Any) -> list[str] | None:
    label = features.get("label") if isinstance(features, dict) else None
    if isinstance(label, dict) and isinstance(label.get("names"), list):
        return [str(n) for n in label["names"]]
    return None


def _hf_rows(batch: Any, names: list[str] | None, where: str, start: int) -> Iterator[ImportedItem]:
    columns = batch.schema.names
    if "image" not in columns or "label" not in columns:
        raise ManifestError(f"{where}: expected columns image and label, found {', '.join(columns)}")
    for i, (image, label) in enumerate(zip(batch.column("image").to_pylist(), batch.column("label").to_pylist(),
                                           strict=True)):
        if not isinstance(image, dict) or not isinstance(image.get("bytes"), bytes):
            raise ManifestError(f"{where} row {start + i}: the image holds no bytes")
        if label is None:
            raise ManifestError(f"{where} row {start + i}: missing label")
        text = names[label] if names is not None and isinstance(label, int) and 0 <= label < len(names) else str(label)
        yield ImportedItem(image["bytes"], text, {"row": start + i, **({"filename": image["path"]}
                                                                       if image.get("path") else {})})


def _parquet(source: Path, split: str | None) -> Iterator[ImportedItem]:
    import pyarrow.parquet as pq

    files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    row = 0
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, …
            raise ManifestError(f"cannot read {path}: {exc}") from None
        meta = parquet.schema_arrow.metadata or {}
        info = json.loads(meta.get(b"huggingface", b"{}"))
        names = _class_names(info.get("info", {}).get("features"))
        for batch in parquet.iter_batches(batch_size=256):
            yield from _hf_rows(batch, names, path.name, row)
            row += batch.num_rows


def _hf_disk(source: Path, split: str | None) -> Iterator[ImportedItem]:
    import pyarrow as pa

    if split:
        source = source / split
    files = sorted(source.glob("*.arrow"))
    if not files:
        raise ManifestError(f"{source} holds no .arrow files (a folder written by save_to_disk)")
    info_path = source / "dataset_info.json"
    names = _class_names(json.loads(info_path.read_text()).get("features")) if info_path.is_file() else None
    row = 0
    for path in files:
        try:
            with pa.memory_map(str(path)) as mapped:
                reader = pa.ipc.open_stream(mapped)
                for batch in reader:
                    yield from _hf_rows(batch, names, path.name, row)
                    row += batch.num_rows
        except pa.ArrowInvalid as exc:
            raise ManifestError(f"cannot read {path}: {exc}") from None


def _webdataset(source: Path, split: str | None) -> Iterator[ImportedItem]:
    shards = sorted(source.glob("*.tar")) if source.is_dir() else [source]
    if not shards:
        raise ManifestError(f"{source} holds no .tar shards")
    for shard in shards:
        try:
            archive = tarfile.open(shard, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise ManifestError(f"{shard} is not a tar shard: {exc}") from None
        with archive:
            key: str | None = None
            sample: dict[str, bytes] = {}
            for member in archive:
                f = archive.extractfile(member) if member.isfile() else None
                if f is None:
                    continue
                name = PurePosixPath(member.name)
                stem, _, ext = name.name.partition(".")
                this = str(name.parent / stem)
                if key is not None and this != key:
                    yield _sample(shard, key, sample)
                    sample = {}
                key = this
                sample[ext.lower()] = f.read()
            if key is not None:
                yield _sample(shard, key, sample)


def _sample(shard: Path, key: str, sample: dict[str, bytes]) -> ImportedItem:
    image = next((ext for ext in sample if f".{ext}" in IMAGE_SUFFIXES), None)
    if image is None:
        raise ManifestError(f"{shard.name}: sample {key!r} has no image")
    if "cls" in sample:
        label = sample["cls"].decode("utf-8").strip()
    elif "json" in sample:
        label = str(json.loads(sample["json"]).get("label", ""))
    else:
        raise ManifestError(f"{shard.name}: sample {key!r} has no .cls or .json label")
    if not label:
        raise ManifestError(f"{shard.name}: sample {key!r} has an empty label")
    return ImportedItem(sample[image], label, {"filename": f"{key}.{image}"})


FORMATS = {
    "imagefolder": _imagefolder,
    "cifar": _cifar,
    "parquet": _parquet,
    "hf-disk": _hf_disk,
    "webdataset": _webdataset,
}


def import_items(
    source: str | Path, fmt: str, *, split: str | None = None, labels: Path | None = None
) -> Iterator[ImportedItem]:
    """The items of ``source`` in format ``fmt`` (one of :data:`FORMATS` or the text
    formats), streamed. ``labels`` is a line-aligned labels file (text formats)."""
    from ._text_import import TEXT_FORMATS, import_text  # it builds on ImportedItem

    source = Path(source)
    if fmt not in FORMATS and fmt not in TEXT_FORMATS:
        raise ManifestError(f"unknown format {fmt!r}; formats: {', '.join([*FORMATS, *TEXT_FORMATS])}")
    if not source.exists():
        raise ManifestError(f"no such file or folder: {source}")
    if fmt in TEXT_FORMATS:
        return import_text(source, fmt, split, labels)
    if labels is not None:
        raise ManifestError(f"--labels is for text formats; {fmt} carries its own labels")
    return FORMATS[fmt](source, split)


def manifest_from_source(
    store: BlobStore, source: str | Path, fmt: str, *, split: str | None = None, progress: Progress | None = None,
    labels: Path | None = None,
) -> tuple[Manifest, CID]:
    """Import ``source`` into ``store`` (one durable batch) and store its manifest."""

    def rows() -> Iterator[ManifestItem]:
        for item in import_items(source, fmt, split=split, labels=labels):
            cid = store.put_file(item.data) if isinstance(item.data, Path) else store.put(item.data)
            yield ManifestItem._built(cid, item.label, item.metadata)

    return _build(store, rows(), None, progress)
