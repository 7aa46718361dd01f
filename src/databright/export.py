"""Exporting a dataset's accepted items as Parquet.

``items.parquet`` has one row per accepted item: its CID, label, the proposal
and contributor it came from, and either the item's feature columns (table
datasets) or the relative path of its file under ``files/`` (file datasets).
pandas (``pd.read_parquet``) and Hugging Face ``datasets``
(``load_dataset("parquet", data_files=...)``) read it as is. Every item is read
through the blob store, which verifies its digest, so a tampered blob stops the
export instead of ending up in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from databright.errors import InputError
from databright.workspace import Workspace

__all__ = ["export_dataset"]


def _suffix(metadata: dict[str, Any]) -> str:
    name = str(metadata.get("filename", ""))
    suffix = Path(name).suffix
    return suffix if suffix.isascii() and len(suffix) <= 10 else ""


def export_dataset(ws: Workspace, dataset_id: int, out: Path) -> dict[str, Any]:
    dataset = ws.index.dataset(dataset_id)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if (out / "items.parquet").exists():
        raise InputError(f"{out} already holds an export; choose an empty folder")
    contributors = {p.proposal_id: p.contributor for p in ws.index.proposals(dataset_id=dataset_id)}
    items = ws.index.items(dataset_id, accepted=True)
    rows: list[dict[str, Any]] = []
    files = out / "files"
    for item in items:
        metadata = json.loads(item.metadata_json)
        row: dict[str, Any] = {
            "cid": item.cid,
            "label": item.label,
            "proposal_id": item.proposal_id,
            "contributor": contributors.get(item.proposal_id, ""),
        }
        data = ws.store.get(item.cid)
        if dataset.kind == "table":
            features = json.loads(data)
            row.update({k: v for k, v in features.items() if k not in row})
        else:
            files.mkdir(parents=True, exist_ok=True)
            name = item.cid + _suffix(metadata)
            (files / name).write_bytes(data)
            row["file"] = f"files/{name}"
            row["filename"] = str(metadata.get("filename", ""))
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=None if rows else ["cid", "label", "proposal_id", "contributor"])
    parquet = out / "items.parquet"
    tmp = out / ".items.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(parquet)
    return {"dataset_id": dataset_id, "items": len(rows), "parquet": str(parquet), "columns": list(frame.columns)}
