"""Manifests: the list of items a proposal commits to.

A manifest has one row per item — the item's CID, its label and free-form
JSON metadata (file name, original row index, …) — and is itself stored as a
blob, so a proposal names it by CID. Its Merkle root (docs/protocol.md) is
computed over the item leaves in manifest order.

Format: JSON Lines in canonical form (keys sorted, compact separators, UTF-8,
``\\n`` after every line), so the same items always give the same bytes and the
same manifest CID. The first line is the schema line::

    {"databright_manifest":1,"items":<number of items>}

followed by one line per item::

    {"cid":"bafkrei…","label":"cat","metadata":{"filename":"img/001.png"}}

:meth:`Manifest.from_bytes` accepts exactly this form and nothing else.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pydantic_core

from ._blobstore import BlobStore
from ._cid import CID, cid_of, digest_of_cid
from ._errors import InvalidCID, ManifestError, StorageError
from ._merkle import MerkleRoot, MerkleTree, item_leaf

#: Called by the builders with (items done, items in all or None while unknown).
Progress = Callable[[int, int | None], None]
#: How many items the builders add between two progress reports.
PROGRESS_EVERY = 512

if TYPE_CHECKING:  # pandas costs most of a second to import: only tables need it
    import pandas as pd

MANIFEST_VERSION = 1
_SCHEMA_KEY = "databright_manifest"
_ITEM_KEYS = ("cid", "label", "metadata")


# One encoder for every call: json.dumps with options builds a new one each time,
# a third of the cost of encoding a table row.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Return the canonical JSON encoding used for manifests and table rows."""
    return _CANONICAL.encode(value).encode("utf-8")


def load_report(store: BlobStore, cid: str, what: str, is_kind: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The JSON report stored at ``cid``; StorageError naming ``what`` was expected when it is not one."""
    try:
        report = json.loads(store.get(cid))
    except ValueError as exc:
        raise StorageError(f"{cid} is not {what}: {exc}") from exc
    if not isinstance(report, dict) or not is_kind(report):
        raise StorageError(f"{cid} is not {what}")
    return report


@dataclass(frozen=True)
class ManifestItem:
    """One manifest row: an item's CID, its label and JSON metadata."""

    cid: CID
    label: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            digest_of_cid(self.cid)
        except InvalidCID as exc:
            raise ManifestError(str(exc)) from exc
        if not isinstance(self.label, str):
            raise ManifestError(f"label must be a string, got {type(self.label).__name__}")
        try:
            self.label.encode("utf-8")
        except UnicodeEncodeError:
            raise ManifestError(f"label {self.label!r} is not valid Unicode text") from None
        if not isinstance(self.metadata, Mapping):
            raise ManifestError(
                f"metadata must be a JSON object, got {type(self.metadata).__name__}"
            )
        try:
            normalised = json.loads(canonical_json(dict(self.metadata)))
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"metadata is not JSON-serialisable: {exc}") from exc
        if normalised != self.metadata:
            raise ManifestError(
                "metadata does not survive a JSON round trip "
                "(use str keys, lists not tuples, finite numbers)"
            )
        # Keep a private copy so later changes to the caller's dict cannot alter the row.
        object.__setattr__(self, "metadata", normalised)

    @classmethod
    def _built(cls, cid: CID, label: str, metadata: dict[str, Any], digest: bytes | None = None) -> ManifestItem:
        """An item made by this module's builders: a CID the store just computed and
        metadata of plain JSON values, so the checks of ``__post_init__`` are skipped.
        ``digest``, when the builder has it, spares decoding the CID again for the leaf."""
        item = object.__new__(cls)
        object.__setattr__(item, "cid", cid)
        object.__setattr__(item, "label", label)
        object.__setattr__(item, "metadata", metadata)
        if digest is not None:
            object.__setattr__(item, "_digest", digest)
        return item

    def to_json(self) -> dict[str, Any]:
        return {"cid": str(self.cid), "label": self.label, "metadata": dict(self.metadata)}

    @property
    def leaf(self) -> bytes:
        """This item's Merkle leaf."""
        digest: bytes | None = self.__dict__.get("_digest")
        return item_leaf(digest_of_cid(self.cid) if digest is None else digest, self.label)


class Manifest:
    """An ordered, non-empty batch of items with its Merkle tree."""

    __slots__ = ("_items", "_root", "_tree")

    def __init__(self, items: Iterable[ManifestItem]) -> None:
        self._items = tuple(items)
        if not self._items:
            raise ManifestError("a manifest needs at least one item")
        for i, item in enumerate(self._items):
            if not isinstance(item, ManifestItem):
                raise ManifestError(f"item {i} is a {type(item).__name__}, not a ManifestItem")
        self._tree: MerkleTree | None = None
        self._root: bytes | None = None

    # -- sequence of items -------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ManifestItem]:
        return iter(self._items)

    def __getitem__(self, index: int) -> ManifestItem:
        return self._items[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"Manifest(items={len(self)}, root=0x{self.root.hex()})"

    @property
    def items(self) -> tuple[ManifestItem, ...]:
        return self._items

    @property
    def item_cids(self) -> list[CID]:
        return [item.cid for item in self._items]

    @property
    def labels(self) -> list[str]:
        return [item.label for item in self._items]

    # -- Merkle commitment ----------------------------------------------------

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree([item.leaf for item in self._items])
        return self._tree

    @property
    def root(self) -> bytes:
        """The Merkle root over the item leaves, in manifest order."""
        if self._root is None:
            self._root = self.tree.root
        return self._root

    def leaf(self, index: int) -> bytes:
        """The Merkle leaf of item ``index``."""
        return self._items[index].leaf

    def proof(self, index: int) -> list[bytes]:
        """The Merkle proof of item ``index`` against :attr:`root`."""
        return self.tree.proof(index)

    # -- bytes ------------------------------------------------------------

    def to_bytes(self) -> bytes:
        lines = [_header(len(self))] + [_line(item) for item in self._items]
        return b"".join(lines)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse canonical manifest bytes; ManifestError (with line number) otherwise."""
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"manifest is not UTF-8: {exc}") from None
        if not text:
            raise ManifestError("manifest is empty")
        if not text.endswith("\n"):
            raise ManifestError("manifest must end with a newline")
        lines = text[:-1].split("\n")
        header = _parse_line(lines[0], 1)
        if set(header) != {_SCHEMA_KEY, "items"}:
            raise ManifestError(
                f'line 1: expected schema line {{"{_SCHEMA_KEY}":{MANIFEST_VERSION},"items":N}}'
            )
        if header[_SCHEMA_KEY] != MANIFEST_VERSION:
            raise ManifestError(
                f"line 1: unsupported manifest version {header[_SCHEMA_KEY]!r} "
                f"(this reader knows {MANIFEST_VERSION})"
            )
        count = header["items"]
        if type(count) is not int or count != len(lines) - 1:
            raise ManifestError(f"line 1: header announces {count!r} items, found {len(lines) - 1}")
        items = []
        for lineno, line in enumerate(lines[1:], start=2):
            row = _parse_line(line, lineno)
            if sorted(row) != list(_ITEM_KEYS):
                raise ManifestError(
                    f"line {lineno}: item keys must be {', '.join(_ITEM_KEYS)}; "
                    f"got {', '.join(sorted(row)) or 'none'}"
                )
            try:
                items.append(ManifestItem(row["cid"], row["label"], row["metadata"]))
            except ManifestError as exc:
                raise ManifestError(f"line {lineno}: {exc}") from None
        return cls(items)

    @property
    def cid(self) -> CID:
        """The CID of :meth:`to_bytes`."""
        return cid_of(self.to_bytes())

    def save(self, store: BlobStore) -> CID:
        """Put the manifest bytes into ``store`` and return their CID."""
        return store.put(self.to_bytes())

    @classmethod
    def load(cls, store: BlobStore, cid: str) -> Manifest:
        """Read and parse the manifest stored under ``cid``."""
        return cls.from_bytes(store.get(cid))


def _header(count: int) -> bytes:
    return canonical_json({_SCHEMA_KEY: MANIFEST_VERSION, "items": count}) + b"\n"


def _line(item: ManifestItem) -> bytes:
    return canonical_json(item.to_json()) + b"\n"


class ManifestWriter:
    """Writes a manifest item by item: its bytes spooled to disk, its Merkle root
    folded in as it goes, so memory does not grow with the number of items.

    :meth:`finish` stores the manifest (the schema line, which counts the items,
    goes first) and returns its CID and root; they equal ``Manifest(items).cid``
    and ``.root`` of the same items.
    """

    def __init__(self) -> None:
        self._spool: IO[bytes] = tempfile.TemporaryFile()
        self._root = MerkleRoot()

    def __len__(self) -> int:
        return len(self._root)

    def add(self, item: ManifestItem) -> None:
        self._spool.write(_line(item))
        self._root.add(item.leaf)

    def finish(self, store: BlobStore) -> tuple[CID, bytes]:
        """Store the manifest; returns (manifest CID, Merkle root)."""
        if not len(self):
            raise ManifestError("a manifest needs at least one item")
        root = self._root.root
        with tempfile.TemporaryDirectory(prefix="databright-manifest-") as scratch:
            path = Path(scratch) / "manifest.jsonl"
            with open(path, "wb") as out:
                out.write(_header(len(self)))
                self._spool.seek(0)
                shutil.copyfileobj(self._spool, out, 1 << 20)
            cid = store.put_file(path)
        self.close()
        return cid, root

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _build(store: BlobStore, rows: Iterable[ManifestItem], total: int | None,
           progress: Progress | None) -> tuple[Manifest, CID]:
    """Store the items ``rows`` yields, in one durable batch, and their manifest."""
    items: list[ManifestItem] = []
    with store.batch(), ManifestWriter() as writer:
        for item in rows:
            items.append(item)
            writer.add(item)
            if progress is not None and len(items) % PROGRESS_EVERY == 0:
                progress(len(items), total)
        if not items:
            raise ManifestError("no items")
        cid, root = writer.finish(store)
    if progress is not None:
        progress(len(items), len(items))
    manifest = Manifest(items)
    manifest._root = root
    return manifest, cid


def _parse_line(line: str, lineno: int) -> dict[str, Any]:
    if not line:
        raise ManifestError(f"line {lineno}: empty line")
    try:
        # Not json.loads: a manifest is anyone's upload, and a process holding the embedded chain runs
        # with py-evm's raised recursion limit, where deep nesting overflows the C stack; this parser
        # refuses nesting past a fixed depth.
        value = pydantic_core.from_json(line, allow_inf_nan=False)
    except ValueError as exc:
        raise ManifestError(f"line {lineno}: invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ManifestError(f"line {lineno}: expected a JSON object")
    try:
        canonical = canonical_json(value).decode("utf-8")
    except ValueError as exc:
        raise ManifestError(f"line {lineno}: {exc}") from None
    if canonical != line:
        raise ManifestError(
            f"line {lineno}: not canonical JSON (sorted keys, no spaces, unescaped UTF-8)"
        )
    return value


# -- builders -------------------------------------------------------------


def manifest_from_folder(
    store: BlobStore,
    folder: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    *,
    file_column: str = "file",
    label_column: str = "label",
    progress: Progress | None = None,
) -> tuple[Manifest, CID]:
    """Build a manifest from a folder of files and a CSV of ``file,label`` rows.

    Every listed file is put into ``store`` (streamed, in one durable batch);
    the manifest keeps the CSV's row order, records each file's path relative
    to ``folder`` as ``metadata["filename"]`` and is itself put into ``store``.
    Returns the manifest and its CID.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ManifestError(f"not a folder: {folder}")
    labels_csv = Path(labels_csv)
    try:
        f = open(labels_csv, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ManifestError(f"cannot read labels CSV {labels_csv}: {exc.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        try:
            columns = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ManifestError(f"{labels_csv}: cannot parse CSV: {exc}") from None
        if not columns:
            raise ManifestError(f"{labels_csv} is empty (expected a header row)")
        for name in (file_column, label_column):
            if name not in columns:
                raise ManifestError(
                    f"{labels_csv} has no column {name!r}; columns: {', '.join(columns)}"
                )

        def rows() -> Iterator[ManifestItem]:
            seen: dict[str, int] = {}
            try:
                for row in reader:
                    line = reader.line_num
                    name, label = row[file_column], row[label_column]
                    if not name or label is None:
                        raise ManifestError(f"{labels_csv} line {line}: missing file name or label")
                    path = (folder / name).resolve()
                    if not path.is_relative_to(folder):
                        raise ManifestError(
                            f"{labels_csv} line {line}: {name!r} points outside {folder}"
                        )
                    rel = path.relative_to(folder).as_posix()
                    if rel in seen:
                        raise ManifestError(
                            f"{labels_csv} line {line}: duplicate row for {rel!r} "
                            f"(first on line {seen[rel]})"
                        )
                    seen[rel] = line
                    if not path.is_file():
                        raise ManifestError(f"{labels_csv} line {line}: no file {rel!r} in {folder}")
                    yield ManifestItem._built(store.put_file(path), label, {"filename": rel})
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ManifestError(f"{labels_csv}: cannot parse CSV: {exc}") from None
            if not seen:
                raise ManifestError(f"{labels_csv} has a header but no rows")

        return _build(store, rows(), None, progress)


def manifest_from_table(
    store: BlobStore,
    table: str | os.PathLike[str] | pd.DataFrame,
    *,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> tuple[Manifest, CID]:
    """Build a manifest with one item per row of a CSV/Parquet file or DataFrame.

    An item's bytes are the canonical JSON object of the row's feature columns
    (all columns but the label unless ``feature_columns`` is given; missing
    values become ``null``); its label is the row's ``label_column`` value as
    a string; its metadata is ``{"row": <0-based row index>}``. Item bytes and
    the manifest are put into ``store`` in one durable batch. Returns the
    manifest and its CID.
    """
    import pandas as pd

    source = None if isinstance(table, pd.DataFrame) else Path(table)
    df: pd.DataFrame = table if isinstance(table, pd.DataFrame) else _read_table(Path(table))
    columns = [str(c) for c in df.columns]
    if label_column not in columns:
        raise ManifestError(
            f"no label column {label_column!r}; columns: {', '.join(columns) or 'none'}"
        )
    features = (
        [c for c in columns if c != label_column]
        if feature_columns is None
        else list(feature_columns)
    )
    missing = [c for c in features if c not in columns]
    if missing:
        raise ManifestError(f"no feature column {missing[0]!r}; columns: {', '.join(columns)}")
    if len(df) == 0:
        raise ManifestError("the table has no rows")
    df = df.set_axis(columns, axis=1)
    labels = df[label_column].tolist()
    values = [_column_values(df[c], c, source) for c in features]

    def rows() -> Iterator[ManifestItem]:
        for i, (label, cells) in enumerate(zip(labels, zip(*values, strict=True), strict=True)):
            if _is_missing(label):
                raise ManifestError(f"{row_location(source, i)}: missing label in column {label_column!r}")
            data = canonical_json(dict(zip(features, cells, strict=True)))
            # Hashing a row again costs less than decoding its CID back for the leaf.
            cid = store.put(data)
            yield ManifestItem._built(cid, str(label), {"row": i}, hashlib.sha256(data).digest())

    return _build(store, rows(), len(df), progress)


def _column_values(series: pd.Series[Any], column: str, source: Path | None) -> list[Any]:
    """A column's cells as JSON values; plain numpy columns are converted all at once."""
    import numpy as np

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        array = series.to_numpy()
        if dtype.kind == "f":
            infinite = np.flatnonzero(np.isinf(array))
            if len(infinite):
                raise ManifestError(f"{row_location(source, int(infinite[0]))}: column {column!r} holds infinity")
            return [None if v != v else v for v in array.tolist()]  # NaN is missing
        return list(array.tolist())
    return [_json_value(v, column, source, i) for i, v in enumerate(series.tolist())]


def row_location(source: Path | None, row: int) -> str:
    """Where the 0-based data ``row`` of a table is, the way people find it.

    'batch.csv line 8' for CSV/TSV (the line its record ends on, as the labels
    CSV of a folder is reported), 'batch.parquet row 7' (1-based) for Parquet,
    'row 7' without a file. Computed only for messages: it reads the file again.
    """
    if source is None:
        return f"row {row + 1}"
    if source.suffix.lower() not in (".csv", ".tsv"):
        return f"{source.name} row {row + 1}"
    try:
        with open(source, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter="\t" if source.suffix.lower() == ".tsv" else ",")
            records = (r for r in reader if r)  # blank lines are no records, for pandas either
            for _ in range(row + 2):  # the header, then rows 0..row
                if next(records, None) is None:
                    break
            else:
                return f"{source.name} line {reader.line_num}"
    except (OSError, csv.Error, UnicodeDecodeError):
        pass
    return f"{source.name} row {row + 1}"


def table_columns(path: Path) -> list[str]:
    """A CSV/TSV/Parquet table's column names in their order, without reading its rows."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names if not str(c).startswith("__index_level_")]
        return [str(c) for c in pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0).columns]
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except FileNotFoundError:
        raise ManifestError(f"no such table: {path}") from None
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{path} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    raise ManifestError(f"unsupported table format {suffix!r} (use .csv, .tsv or .parquet)")


def _is_missing(value: Any) -> bool:
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _json_value(value: Any, column: str, source: Path | None, row: int) -> Any:
    """Map a table cell to a JSON value (numpy/pandas scalars to Python ones)."""
    if _is_missing(value):
        return None
    if isinstance(value, (str, bool)):
        return value
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()  # numpy scalar → Python scalar
        if _is_missing(value):
            return None
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isinf(f):
            raise ManifestError(f"{row_location(source, row)}: column {column!r} holds infinity")
        return f
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    raise ManifestError(
        f"{row_location(source, row)}: column {column!r} holds a {type(value).__name__}, not a JSON value"
    )
