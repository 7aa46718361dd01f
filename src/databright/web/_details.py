"""Contributor details a dataset asks for (e.g. affiliation), signed by the contributor, shown verified.

A dataset's metadata may list ``contributor_fields``. The propose form asks
for each; the contributor signs them as an EIP-191 personal message (the
server signs for a local account, the wallet for a wallet session — the same
text, built the same way in ``wallet.js``). The signed record is kept under
the home, keyed by the batch's manifest CID and the contributor, and checked
again whenever it is shown: a record edited afterwards shows as unverified.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from databright.errors import InputError
from databright.web._auth import check_signed_now, comment_date, recover

__all__ = [
    "Details", "details_message", "load_details", "read_fields", "required_fields", "save_details", "sign_details",
    "verify_details",
]

MAX_VALUE = 200


@dataclass(frozen=True)
class Details:
    fields: list[tuple[str, str]]
    contributor: str
    date: str
    message: str
    signature: str
    verified: bool


def details_message(chain_id: int, dataset_id: int, contributor: str, fields: list[tuple[str, str]], date: str) -> str:
    """The text a contributor signs: the dataset, who they are, when, and one ``name: value`` line per field."""
    lines = "\n".join(f"{name}: {value}" for name, value in fields)
    return (f"DataBright contributor details for dataset {dataset_id} (chain {chain_id})\n"
            f"Contributor: {to_checksum_address(contributor)}\nDate: {date}\n\n{lines}")


def required_fields(metadata: dict[str, Any]) -> list[str]:
    """The details a dataset's metadata asks contributors for."""
    fields = metadata.get("contributor_fields") or []
    return [str(f) for f in fields] if isinstance(fields, list) else []


def read_fields(required: list[str], values: list[str]) -> list[tuple[str, str]]:
    """Pair the dataset's fields with the form's values, in order; every one must be given, on one line."""
    if len(values) != len(required):
        raise InputError(f"this dataset asks every contributor for: {', '.join(required)}")
    pairs = []
    for name, value in zip(required, values, strict=True):
        value = value.strip()
        if not value:
            raise InputError(f"this dataset asks for your {name}")
        if len(value) > MAX_VALUE or "\n" in value or "\r" in value:
            raise InputError(f"your {name} must be one line of at most {MAX_VALUE} characters")
        pairs.append((name, value))
    return pairs


def sign_details(signer: LocalAccount, chain_id: int, dataset_id: int,
                 fields: list[tuple[str, str]]) -> tuple[str, str]:
    """(date, signature) of a local account's details."""
    date = comment_date()
    message = details_message(chain_id, dataset_id, signer.address, fields, date)
    return date, signer.sign_message(encode_defunct(text=message)).signature.to_0x_hex()


def verify_details(chain_id: int, dataset_id: int, contributor: str, fields: list[tuple[str, str]], date: str,
                   signature: str) -> None:
    """Refuse details not signed by ``contributor`` just now (a wallet's signature, checked before storing)."""
    check_signed_now(date, "the details")
    message = details_message(chain_id, dataset_id, contributor, fields, date)
    if recover(message, signature) != to_checksum_address(contributor):
        raise InputError("the contributor details are not signed by the signed-in account")


def _path(home: Path, manifest_cid: str, contributor: str) -> Path:
    return home / "web" / "details" / f"{manifest_cid}-{contributor.lower()}.json"


def save_details(home: Path, dataset_id: int, manifest_cid: str, contributor: str, fields: list[tuple[str, str]],
                 date: str, signature: str) -> None:
    path = _path(home, manifest_cid, contributor)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {"dataset_id": dataset_id, "manifest_cid": manifest_cid, "contributor": to_checksum_address(contributor),
              "fields": fields, "date": date, "signature": signature}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".details-")
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)  # whole or not at all


def load_details(home: Path, chain_id: int, dataset_id: int, manifest_cid: str, contributor: str) -> Details | None:
    """The signed details of a proposal's contributor, verified now; None if there are none."""
    try:
        record: dict[str, Any] = json.loads(_path(home, manifest_cid, contributor).read_text())
        fields = [(str(k), str(v)) for k, v in record["fields"]]
        date, signature = str(record["date"]), str(record["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    message = details_message(chain_id, dataset_id, contributor, fields, date)
    try:
        verified = record.get("dataset_id") == dataset_id and recover(message, signature) == to_checksum_address(
            contributor)
    except InputError:
        verified = False
    return Details(fields, to_checksum_address(contributor), date, message, signature, verified)
