"""Exporting a dataset's accepted items as Parquet.

``items.parquet`` has one row per accepted item: its CID, its label (a
Hugging Face ``ClassLabel``: the index into the dataset's label set, with the
name beside it in ``label_name``), the proposal and contributor it came from,
and then either the item's feature columns in the order the dataset's seed
listed them (table datasets) or the item itself (file datasets): ``file`` is a
struct ``{bytes, path}`` holding the file's bytes, the form of Hugging Face's
``Image`` feature, so the export loads from any working directory, copied or
uploaded anywhere. ``files/`` keeps a copy of each file under its CID for tools
that want paths. The Hugging Face features are recorded in the Parquet schema
metadata, so ``load_dataset("parquet", data_files=...)`` yields a ``ClassLabel``
and decoded images without any casting; pandas reads the same file as is.

Every item is read through the blob store, which verifies its digest, so a
tampered blob stops the export instead of ending up in it.

The export streams: items are read from the index a page at a time and written
as Parquet row groups of at most ``ROW_GROUP`` rows or ``ROW_GROUP_BYTES`` bytes,
so memory depends on the row group, not on the dataset. A first pass over the
index (labels and file names only, no blobs) fixes the label set and whether
every file is an image, since the schema is written before the first row. The
dashboard's download (``parquet_chunks``) is the same writer, sending each row
group as it is written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from databright.errors import InputError
from databright.index import ItemRow
from databright.operations import dataset_columns, read_metadata
from databright.workspace import Workspace

__all__ = ["export_dataset", "parquet_chunks"]

# Suffixes Hugging Face's Image feature (Pillow) decodes.
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
ROW_GROUP = 4096
ROW_GROUP_BYTES = 32 * 2**20
_BASE = ("cid", "label", "label_name", "proposal_id", "contributor")


def _suffix(metadata: dict[str, Any]) -> str:
    name = str(metadata.get("filename", ""))
    suffix = Path(name).suffix
    return suffix if suffix.isascii() and len(suffix) <= 10 else ""


def _hf_value(arrow_type: Any) -> dict[str, Any]:
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return {field.name: _hf_value(field.type) for field in arrow_type}
    names = {"double": "float64", "float": "float32", "halffloat": "float16"}
    return {"dtype": names.get(str(arrow_type), str(arrow_type)), "_type": "Value"}


def _features(schema: Any, names: list[str], images: bool) -> dict[str, Any]:
    """The Hugging Face ``Features`` of the table, as ``datasets`` stores them in Parquet."""
    features: dict[str, Any] = {}
    for field in schema:
        if field.name == "label":
            features["label"] = {"names": names, "_type": "ClassLabel"}
        elif field.name == "file" and images:
            features["file"] = {"_type": "Image"}
        else:
            features[field.name] = _hf_value(field.type)
    return features


def _survey(ws: Workspace, dataset_id: int) -> tuple[list[str], bool, int]:
    """The label names (declared first), whether every item is an image file, and how many items there are."""
    declared = [str(x) for x in read_metadata(ws, dataset_id).get("labels", [])]
    seen: set[str] = set()
    images, count = True, 0
    query = (select(ItemRow.label, ItemRow.metadata_json)
             .where(ItemRow.dataset_id == dataset_id, ItemRow.accepted.is_(True))
             .execution_options(yield_per=10_000))
    with ws.index.session() as session:
        for label, metadata_json in session.execute(query):
            seen.add(label)
            count += 1
            images = images and _suffix(json.loads(metadata_json)).lower() in _IMAGE_SUFFIXES
    return declared + sorted(seen - set(declared)), images and count > 0, count


class _Rows:
    """Turns index items into export rows, a row group at a time."""

    def __init__(self, ws: Workspace, dataset_id: int, names: list[str], files: Path | None) -> None:
        self.ws, self.dataset_id, self.files = ws, dataset_id, files
        self.label_index = {name: n for n, name in enumerate(names)}
        self.table = ws.index.dataset(dataset_id).kind == "table"
        self.columns = dataset_columns(ws, dataset_id) if self.table else []
        self.contributors: dict[int, str] = {}  # one per accepted proposal, not per item

    def _contributor(self, proposal_id: int) -> str:
        if proposal_id not in self.contributors:
            self.contributors[proposal_id] = self.ws.index.proposal(proposal_id).contributor
        return self.contributors[proposal_id]

    def _row(self, item: ItemRow) -> tuple[dict[str, Any], int]:
        metadata = json.loads(item.metadata_json)
        row: dict[str, Any] = {
            "cid": item.cid, "label": self.label_index[item.label], "label_name": item.label,
            "proposal_id": item.proposal_id, "contributor": self._contributor(item.proposal_id),
        }
        data = self.ws.store.get(item.cid)
        if self.table:
            features = json.loads(data)
            row.update({k: features.get(k) for k in self.columns})
            row.update({k: v for k, v in features.items() if k not in row})
        else:
            name = item.cid + _suffix(metadata)
            if self.files is not None:
                (self.files / name).write_bytes(data)
            row["file"] = {"bytes": data, "path": name}
            row["filename"] = str(metadata.get("filename", ""))
        return row, len(data)

    def groups(self) -> Iterator[list[dict[str, Any]]]:
        group: list[dict[str, Any]] = []
        size = 0
        for item in self.ws.index.iter_items(self.dataset_id, accepted=True):
            row, nbytes = self._row(item)
            group.append(row)
            size += nbytes
            if len(group) >= ROW_GROUP or size >= ROW_GROUP_BYTES:
                yield group
                group, size = [], 0
        if group:
            yield group


def _empty_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("cid", pa.string()), ("label", pa.int64()), ("label_name", pa.string()),
                      ("proposal_id", pa.int64()), ("contributor", pa.string())])


def _write(ws: Workspace, dataset_id: int, sink: Any, files: Path | None,
           progress: Callable[[int, int | None], None] | None = None) -> Iterator[dict[str, Any]]:
    """Write the export to ``sink`` a row group at a time; yields after each group, then the summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names, images, total = _survey(ws, dataset_id)
    rows = _Rows(ws, dataset_id, names, files)
    groups = rows.groups()
    first = next(groups, None)
    table = _empty_schema().empty_table() if first is None else pa.Table.from_pylist(first)
    hf = json.dumps({"info": {"features": _features(table.schema, names, images)}})
    schema = table.schema.with_metadata({"huggingface": hf})
    written = 0
    with pq.ParquetWriter(sink, schema) as writer:
        for group in groups if first is None else itertools.chain([first], groups):
            try:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(f"dataset {dataset_id}: item {written + 1} onwards do not fit the columns of the "
                                 f"first items ({str(exc).splitlines()[0]})") from exc
            written += len(group)
            if progress:
                progress(written, total)
            yield {}
    yield {"dataset_id": dataset_id, "items": written, "columns": schema.names, "label_names": names}


def export_dataset(ws: Workspace, dataset_id: int, out: Path, fmt: str = "parquet",
                   progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    if fmt != "parquet":  # text datasets' own formats: OpenNMT files, JSON Lines
        from databright.export_text import export_text

        return export_text(ws, dataset_id, out, fmt)
    ws.index.dataset(dataset_id)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if (out / "items.parquet").exists():
        raise InputError(f"{out} already holds an export; choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    files = out / "files"
    if ws.index.dataset(dataset_id).kind != "table":
        files.mkdir(exist_ok=True)
    parquet, tmp = out / "items.parquet", out / ".items.parquet.tmp"
    summary: dict[str, Any] = {}
    try:
        with tmp.open("wb") as sink:
            for summary in _write(ws, dataset_id, sink, files if files.is_dir() else None, progress):
                pass
    except BaseException:
        tmp.unlink(missing_ok=True)  # never a half-written items.parquet
        raise
    tmp.replace(parquet)
    return {**summary, "parquet": str(parquet)}


class _Buffer:
    """A write-only file for ParquetWriter whose bytes are taken away as they are sent."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def parquet_chunks(ws: Workspace, dataset_id: int) -> Iterator[bytes]:
    """The export's ``items.parquet`` as bytes, a row group at a time (files stay embedded, none copied)."""
    ws.index.dataset(dataset_id)
    buffer = _Buffer()
    for _ in _write(ws, dataset_id, buffer, None):
        chunk = buffer.take()
        if chunk:
            yield chunk
    tail = buffer.take()
    if tail:
        yield tail
