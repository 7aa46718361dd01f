"""Importers for text datasets, read line by line, never loaded whole.

Formats (``--from``):

- ``text`` — a UTF-8 file, one text per line. Unlabelled, or labelled by a
  line-aligned labels file (``--labels``: line *n* is the label of line *n*),
  the convention of OpenNMT's parallel files.
- ``opennmt`` — OpenNMT's parallel files: ``src-<split>.txt`` and
  ``tgt-<split>.txt`` in a folder (``--split``, default ``train``), or the
  ``src`` file itself with its ``tgt`` twin beside it. Line *n* of one is the
  translation of line *n* of the other; files of different lengths are refused.
- ``jsonl`` — one JSON object per line with ``text``, or ``source`` and
  ``target``, and an optional ``label``.
- ``text-csv`` — a CSV file whose header names a ``text`` column, or ``source``
  and ``target`` columns, and an optional ``label`` column.

Blank lines are skipped (in parallel files only where both sides are blank;
one blank side is an error). Every error names the file and line. Items are
stored as :mod:`._text` describes; their metadata is ``{"line": n}``, the
1-based line of the item in the source file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from ._errors import ManifestError
from ._importers import ImportedItem
from ._text import encode_pair, encode_text

__all__ = ["TEXT_FORMATS", "import_text", "text_source"]

TEXT_FORMATS = ("text", "opennmt", "jsonl", "text-csv")


def _raw_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line with its ending)`` of a UTF-8 file, split on ``\\n`` only."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte-order mark is not part of the first text
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(f"{path.name} line {lineno}: not valid UTF-8") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, without the line end."""
    for lineno, line in _raw_lines(path):
        yield lineno, line.rstrip("\n").removesuffix("\r")


def _labels(path: Path | None) -> Iterator[str | None]:
    """Line-aligned labels, then None forever (no labels file: None throughout)."""
    if path is not None:
        for _, label in _lines(path):
            yield label.strip()
    while True:
        yield None


def _plain(source: Path, labels: Path | None) -> Iterator[ImportedItem]:
    label_lines = _labels(labels)
    count = 0
    for lineno, line in _lines(source):
        label = next(label_lines)
        count = lineno
        if not line.strip():
            continue
        if labels is not None and not label:
            raise ManifestError(f"{labels.name} line {lineno}: no label for {source.name} line {lineno}")
        yield ImportedItem(encode_text(line, f"{source.name} line {lineno}"), label or "", {"line": lineno})
    _check_labels_length(labels, count, source)


def _check_labels_length(labels: Path | None, count: int, source: Path) -> None:
    if labels is not None:
        extra = sum(1 for _ in _lines(labels))
        if extra != count:
            raise ManifestError(f"{source.name} has {count} lines but {labels.name} has {extra}")


def _opennmt_files(source: Path, split: str | None) -> tuple[Path, Path]:
    if source.is_dir():
        src, tgt = source / f"src-{split or 'train'}.txt", source / f"tgt-{split or 'train'}.txt"
    else:
        head, found, tail = source.name.rpartition("src")
        if not found:
            raise ManifestError(f"{source.name}: expected an OpenNMT source file named src-<split>.txt")
        src, tgt = source, source.with_name(f"{head}tgt{tail}")
    for path in (src, tgt):
        if not path.is_file():
            raise ManifestError(f"no OpenNMT file {path}")
    return src, tgt


def _opennmt(source: Path, split: str | None, labels: Path | None) -> Iterator[ImportedItem]:
    src, tgt = _opennmt_files(source, split)
    label_lines = _labels(labels)
    count = 0
    for left, right in zip_longest(_lines(src), _lines(tgt)):
        if left is None or right is None:
            longer, shorter = (src, tgt) if right is None else (tgt, src)
            present = left or right
            lineno = present[0] if present is not None else 0
            raise ManifestError(f"{src.name} and {tgt.name} differ in length: {longer.name} has a line {lineno}, "
                                f"{shorter.name} ends after line {lineno - 1}")
        lineno, count = left[0], left[0]
        label = next(label_lines)
        if not left[1].strip() and not right[1].strip():
            continue
        if labels is not None and not label:
            raise ManifestError(f"{labels.name} line {lineno}: no label for line {lineno}")
        data = encode_pair(left[1], right[1], f"{src.name}/{tgt.name} line {lineno}")
        yield ImportedItem(data, label or "", {"line": lineno})
    _check_labels_length(labels, count, src)


def _fields(record: dict[str, Any], where: str, paired: list[bool]) -> tuple[bytes, str]:
    """The blob and label of one JSONL or CSV record; ``paired`` holds the first record's layout."""
    is_pair = "source" in record or "target" in record
    if not paired:
        paired.append(is_pair)
    elif paired[0] != is_pair:
        first = "source/target pairs" if paired[0] else "single texts"
        raise ManifestError(f"{where}: the records before hold {first}; this one does not")
    texts = [record.get("source"), record.get("target")] if is_pair else [record.get("text")]
    names = ("source", "target") if is_pair else ("text",)
    for name, value in zip(names, texts, strict=True):
        if not isinstance(value, str):
            raise ManifestError(f"{where}: {name!r} must be a string, got {type(value).__name__}")
    label = record.get("label", "")
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise ManifestError(f"{where}: 'label' must be a string or an integer")
    data = encode_pair(texts[0], texts[1], where) if is_pair else encode_text(texts[0], where)  # type: ignore[arg-type]
    return data, str(label).strip()


def _jsonl(source: Path) -> Iterator[ImportedItem]:
    paired: list[bool] = []
    for lineno, line in _lines(source):
        if not line.strip():
            continue
        where = f"{source.name} line {lineno}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ManifestError(f"{where}: invalid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ManifestError(f"{where}: expected a JSON object with 'text' or 'source' and 'target'")
        data, label = _fields(record, where, paired)
        yield ImportedItem(data, label, {"line": lineno})


def _text_csv(source: Path) -> Iterator[ImportedItem]:
    paired: list[bool] = []
    # Decoded line by line here, not by a text-mode file, so a bad byte is reported at its line.
    reader = csv.DictReader(line for _, line in _raw_lines(source))
    try:
        header = reader.fieldnames or []
        if "text" not in header and not {"source", "target"} <= set(header):
            raise ManifestError(f"{source.name}: expected a header with a 'text' column, or 'source' and "
                                f"'target' columns; found {', '.join(header) or 'none'}")
        for record in reader:
            where = f"{source.name} line {reader.line_num}"
            if None in record or any(value is None for value in record.values()):
                raise ManifestError(f"{where}: {len(header)} columns expected")
            fields = {k: v for k, v in record.items() if k in ("text", "source", "target", "label")}
            data, label = _fields(fields, where, paired)
            yield ImportedItem(data, label, {"line": reader.line_num})
    except csv.Error as exc:
        raise ManifestError(f"{source.name} line {reader.line_num}: {exc}") from None


def import_text(source: Path, fmt: str, split: str | None, labels: Path | None) -> Iterator[ImportedItem]:
    """The items of a text ``source`` in ``fmt`` (one of :data:`TEXT_FORMATS`), streamed."""
    if labels is not None and fmt in ("jsonl", "text-csv"):
        raise ManifestError(f"a {fmt} file carries its labels in a 'label' field; --labels is for text and opennmt")
    if labels is not None and not labels.is_file():
        raise ManifestError(f"no such labels file: {labels}")
    if fmt == "text":
        return _plain(source, labels)
    if fmt == "opennmt":
        return _opennmt(source, split, labels)
    if source.is_dir():
        raise ManifestError(f"{source} is a folder; a {fmt} source is one file")
    return _jsonl(source) if fmt == "jsonl" else _text_csv(source)


def text_source(source: Path, fmt: str, split: str | None) -> Path:
    """The file a text import's line numbers refer to (for messages)."""
    return _opennmt_files(source, split)[0] if fmt == "opennmt" else source
