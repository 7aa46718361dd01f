"""Uploaded batches: staged outside the blob store, checked, and stored only for a proposal that can be sent.

An upload is written to a temporary folder and built into a manifest against
a staging store there, so nothing reaches the home's blob store until the
batch fits the dataset and the sender can pay the bond; the temporary folder
goes away whatever happens. File names are taken as sent (a browser encodes
``"``, CR and LF in them as ``%22``, ``%0D``, ``%0A``) and never become paths
of their own; error messages name the uploaded files, never a server path.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile

from databright.errors import DataBrightError, InputError
from databright.operations import TABLE_SUFFIXES, Batch
from databright.storage import BlobStore, LocalBlobStore, manifest_from_folder, manifest_from_table, table_columns
from databright.web._pages import eth
from databright.web._state import WebState

__all__ = ["StagedBatch", "check_funds", "staged_batch"]

# Gas a proposal may need beyond its bond; a sender with less could not get it mined.
_PROPOSE_GAS = 400_000
_FORM_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n", "%0d": "\r", "%0a": "\n"}


@dataclass(frozen=True)
class StagedBatch:
    batch: Batch
    staging: LocalBlobStore

    def store_in(self, store: BlobStore) -> None:
        """Copy the batch's blobs (items and manifest) into ``store``: the step that makes it proposable."""
        # Read back verified (a staged blob may live in a pack, not a file of its own), written in one batch.
        with store.batch():
            for cid in self.staging.cids():
                store.put(self.staging.get(cid))


def file_name(sent: str | None) -> str:
    """The name a browser sent, decoded as the HTML form encoding escapes it, without any folder part."""
    name = re.sub(r"%(22|0[dDaA])", lambda m: _FORM_ESCAPES[m.group(0)], sent or "")
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _save(files: Sequence[UploadFile], labels: UploadFile | None, table: UploadFile | None,
          folder: Path) -> tuple[Path, Path | None]:
    if table is not None and table.filename:
        suffix = Path(file_name(table.filename)).suffix.lower()
        if suffix not in TABLE_SUFFIXES:
            raise InputError(f"the table {file_name(table.filename)!r} is not a .csv, .tsv or .parquet file")
        path = folder / f"table{suffix}"  # our own name: the sent one is only for messages
        _copy(table, path)
        return path, None
    named = [f for f in files if f.filename]
    if not named:
        raise InputError("choose item files and their labels CSV, or a table (CSV or Parquet)")
    if labels is None or not labels.filename:
        raise InputError("a labels CSV (columns file,label) must come with the item files")
    items = folder / "items"
    items.mkdir()
    for f in named:
        name = file_name(f.filename)
        if not name or name.startswith(".") or "\0" in name:
            raise InputError(f"invalid file name {f.filename!r}")
        if (items / name).exists():
            raise InputError(f"two uploaded files are named {name!r}")
        _copy(f, items / name)
    csv = folder / "labels.csv"
    _copy(labels, csv)
    return items, csv


def _copy(upload: UploadFile, path: Path) -> None:
    upload.file.seek(0)
    with open(path, "wb") as out:
        while chunk := upload.file.read(1 << 20):
            out.write(chunk)


def _without_paths(message: str, folder: Path) -> str:
    for root in {str(folder.resolve()), str(folder)}:
        message = (message.replace(f"{root}/items", "the uploaded files").replace(f"{root}/labels.csv", "the labels CSV")
                   .replace(f"{root}/table", "the table").replace(root, "the upload"))
    return message


@contextmanager
def staged_batch(files: Sequence[UploadFile], labels: UploadFile | None, table: UploadFile | None,
                 kind: str) -> Iterator[StagedBatch]:
    """The uploaded batch for a dataset of ``kind``, built in a temporary folder removed when the block ends."""
    has_table = table is not None and bool(table.filename)
    if kind == "files" and has_table:
        raise InputError("this dataset holds one file per item: upload item files and a labels CSV, not a table")
    if kind == "table" and any(f.filename for f in files):
        raise InputError("this dataset holds table rows: upload one CSV or Parquet table, not item files")
    with tempfile.TemporaryDirectory(prefix="databright-upload-") as tmp:
        folder = Path(tmp)
        try:
            source, csv = _save(files, labels, table, folder)
            staging = LocalBlobStore(folder / "blobs")
            if csv is None:
                manifest, cid = manifest_from_table(staging, source)
                batch = Batch(manifest, str(cid), source, tuple(c for c in table_columns(source) if c != "label"))
            else:
                manifest, cid = manifest_from_folder(staging, source, csv)
                batch = Batch(manifest, str(cid), csv)  # messages name the CSV's lines
        except DataBrightError as exc:
            raise InputError(_without_paths(str(exc).splitlines()[0], folder)) from None
        yield StagedBatch(batch, staging)


def check_funds(state: WebState, sender: str, dataset_id: int) -> None:
    """Refuse a sender who cannot pay the dataset's proposal bond and the gas to send it."""
    ledger = state.ws.ledger
    bond = state.ws.market.dataset(dataset_id).proposal_bond
    gas = _PROPOSE_GAS * ledger.call_rpc(lambda: ledger.w3.eth.gas_price)
    balance = ledger.balance(sender)
    if balance < bond + gas:
        raise InputError(f"{sender} holds {eth(balance)}, not enough for the proposal bond of {eth(bond)} "
                         f"and about {eth(gas)} of gas; nothing was uploaded")
