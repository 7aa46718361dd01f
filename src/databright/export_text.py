"""Exporting a text dataset's accepted items as OpenNMT files or JSON Lines.

``--format opennmt`` writes what OpenNMT's ``onmt_build_vocab`` and
``onmt_train`` read: for parallel text ``src-train.txt`` and ``tgt-train.txt``,
line *n* of one the translation of line *n* of the other; for single texts
``text.txt``; and ``labels.txt`` beside them when the items are labelled (line
*n* the label of line *n*). The folder imports again with ``--from opennmt``
(or ``--from text --labels``), giving the same items and CIDs. A text holding a
line break cannot be one line: such an item stops the export with its CID
(export it as JSON Lines instead).

``--format jsonl`` writes ``items.jsonl``, one object per item with its
``cid``, ``label``, ``proposal_id`` and ``text`` or ``source`` and ``target``:
what ``--from jsonl`` imports, and what Hugging Face's
``load_dataset("json", ...)`` reads.

Items are read through the blob store, which verifies each digest. Files are
written beside their final names and renamed into place at the end, so a
failed export leaves no partial files.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from databright.errors import InputError
from databright.storage import ManifestError, decode_text
from databright.workspace import Workspace

__all__ = ["TEXT_EXPORT_FORMATS", "export_text"]

TEXT_EXPORT_FORMATS = ("opennmt", "jsonl")


def _names(fmt: str, paired: bool, labelled: bool) -> list[str]:
    if fmt == "jsonl":
        return ["items.jsonl"]
    names = ["src-train.txt", "tgt-train.txt"] if paired else ["text.txt"]
    return names + (["labels.txt"] if labelled else [])


def _one_line(text: str, cid: str) -> str:
    if "\n" in text or "\r" in text:
        raise InputError(f"item {cid} holds a line break and cannot be one line of an OpenNMT file; "
                         "export with --format jsonl")
    return text + "\n"


def export_text(ws: Workspace, dataset_id: int, out: Path, fmt: str) -> dict[str, Any]:
    """Write the accepted items of text dataset ``dataset_id`` to folder ``out`` in ``fmt``."""
    dataset = ws.index.dataset(dataset_id)
    if fmt not in TEXT_EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; formats: parquet, {', '.join(TEXT_EXPORT_FORMATS)}")
    if dataset.kind != "text":
        raise InputError(f"--format {fmt} is for text datasets; dataset {dataset_id} holds {dataset.kind or 'files'}")
    meta = json.loads(dataset.metadata_json or "{}")
    paired = bool(meta.get("paired")) if isinstance(meta, dict) else False
    items = ws.index.items(dataset_id, accepted=True)
    labelled = any(item.label for item in items)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    names = _names(fmt, paired, labelled)
    taken = [name for name in names if (out / name).exists()]
    if taken:
        raise InputError(f"{out} already holds {', '.join(taken)}; choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    temps = [out / f".{name}.tmp" for name in names]
    try:
        with ExitStack() as stack:
            files: list[IO[str]] = [stack.enter_context(open(t, "w", encoding="utf-8", newline="")) for t in temps]
            for item in items:
                try:
                    source, target = decode_text(ws.store.get(item.cid), f"item {item.cid}")
                except ManifestError as exc:
                    raise InputError(str(exc)) from None
                if (target is not None) != paired:
                    raise InputError(f"item {item.cid} is not a {'pair' if paired else 'single text'}")
                if fmt == "jsonl":
                    texts = {"source": source, "target": target} if target is not None else {"text": source}
                    record = {"cid": item.cid, "label": item.label, "proposal_id": item.proposal_id, **texts}
                    files[0].write(json.dumps(record, ensure_ascii=False) + "\n")
                    continue
                lines = [source, target] if target is not None else [source]
                lines += [item.label] if labelled else []
                for f, line in zip(files, lines, strict=True):
                    f.write(_one_line(line, item.cid))
        for temp, name in zip(temps, names, strict=True):
            temp.replace(out / name)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return {"dataset_id": dataset_id, "items": len(items), "format": fmt, "paired": paired,
            "files": [str(out / name) for name in names]}
