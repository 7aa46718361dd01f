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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from databright.errors import InputError
from databright.operations import dataset_columns, read_metadata
from databright.workspace import Workspace

__all__ = ["export_dataset"]

# Suffixes Hugging Face's Image feature (Pillow) decodes.
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


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


def export_dataset(ws: Workspace, dataset_id: int, out: Path, fmt: str = "parquet") -> dict[str, Any]:
    if fmt != "parquet":  # text datasets' own formats: OpenNMT files, JSON Lines
        from databright.export_text import export_text

        return export_text(ws, dataset_id, out, fmt)
    import pyarrow as pa
    import pyarrow.parquet as pq

    dataset = ws.index.dataset(dataset_id)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if (out / "items.parquet").exists():
        raise InputError(f"{out} already holds an export; choose an empty folder")
    contributors = {p.proposal_id: p.contributor for p in ws.index.proposals(dataset_id=dataset_id)}
    items = ws.index.items(dataset_id, accepted=True)
    declared = [str(x) for x in read_metadata(ws, dataset_id).get("labels", [])]
    names = declared + sorted({i.label for i in items} - set(declared))
    label_index = {name: n for n, name in enumerate(names)}
    table_dataset = dataset.kind == "table"
    columns = dataset_columns(ws, dataset_id) if table_dataset else []
    rows: list[dict[str, Any]] = []
    files = out / "files"
    images = bool(items) and not table_dataset
    for item in items:
        metadata = json.loads(item.metadata_json)
        row: dict[str, Any] = {
            "cid": item.cid,
            "label": label_index[item.label],
            "label_name": item.label,
            "proposal_id": item.proposal_id,
            "contributor": contributors.get(item.proposal_id, ""),
        }
        data = ws.store.get(item.cid)
        if table_dataset:
            features = json.loads(data)
            row.update({k: features.get(k) for k in columns})
            row.update({k: v for k, v in features.items() if k not in row})
        else:
            files.mkdir(parents=True, exist_ok=True)
            name = item.cid + _suffix(metadata)
            (files / name).write_bytes(data)
            images = images and _suffix(metadata).lower() in _IMAGE_SUFFIXES
            row["file"] = {"bytes": data, "path": name}
            row["filename"] = str(metadata.get("filename", ""))
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        table = pa.Table.from_pylist(rows)
    else:
        table = pa.table({"cid": pa.array([], pa.string()), "label": pa.array([], pa.int64()),
                          "label_name": pa.array([], pa.string()), "proposal_id": pa.array([], pa.int64()),
                          "contributor": pa.array([], pa.string())})
    features = _features(table.schema, names, images)
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    parquet = out / "items.parquet"
    tmp = out / ".items.parquet.tmp"
    pq.write_table(table, tmp)
    tmp.replace(parquet)
    return {"dataset_id": dataset_id, "items": len(rows), "parquet": str(parquet), "columns": table.column_names,
            "label_names": names}
