"""A dataset made from the create form: its metadata and on-chain parameters, checked before anything is sent."""

from __future__ import annotations

import re
import time
from decimal import Decimal

from databright.chain import DatasetParams
from databright.errors import InputError
from databright.operations import DatasetMetadata
from databright.storage import canonical_json, digest_of_cid
from databright.web._state import WebState
from databright.web.schemas import DatasetCreate

__all__ = ["MAX_CONTRIBUTOR_FIELDS", "contributor_fields", "dataset_plan", "store_metadata"]

MAX_CONTRIBUTOR_FIELDS = 8
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 _\-]{0,39}$")


def _names(text: str, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if any(len(n) > 100 for n in names):
        raise InputError(f"a {what} is longer than 100 characters")
    return names


def contributor_fields(text: str) -> tuple[str, ...]:
    """The details contributors must give, from ``"affiliation, country"``; refuses odd names."""
    names = _names(text, "contributor field")
    bad = [n for n in names if not _FIELD_NAME.match(n)]
    if bad:
        raise InputError(f"contributor field {bad[0]!r}: use up to 40 letters, digits, spaces, '-' or '_'")
    if len(names) > MAX_CONTRIBUTOR_FIELDS:
        raise InputError(f"at most {MAX_CONTRIBUTOR_FIELDS} contributor fields")
    return names


def _bps(percent: Decimal) -> int:
    return int(percent * 100)


def dataset_plan(body: DatasetCreate, evaluator: str = "0x" + "00" * 20) -> tuple[DatasetMetadata, DatasetParams]:
    """The metadata and parameters of ``body`` (the metadata digest still zero: set when stored)."""
    if not body.name.strip():
        raise InputError("a dataset needs a name")
    if body.base_reward_per_item > body.max_reward_per_proposal:
        raise InputError("the reward per item is above the cap per proposal")
    fields = contributor_fields(body.contributor_fields)
    extra = (("contributor_fields", list(fields)),) if fields else ()
    metadata = DatasetMetadata(body.name.strip(), body.description.strip(), body.kind, _names(body.labels, "label"),
                               body.license.strip(), extra)
    params = DatasetParams(
        metadata_digest=b"\0" * 32, initial_shares=body.initial_shares, quorum_bps=_bps(body.quorum_percent),
        approval_bps=_bps(body.approval_percent), voting_period=int(body.voting_hours * 3600),
        proposal_bond=int(body.bond_eth * 10**18), base_reward_per_item=body.base_reward_per_item,
        max_reward_per_proposal=body.max_reward_per_proposal, evaluator=evaluator)
    return metadata, params


def store_metadata(state: WebState, metadata: DatasetMetadata, params: DatasetParams) -> DatasetParams:
    """Store the metadata blob (as ``operations.create_dataset`` does); the parameters with its digest."""
    doc = metadata.to_json() | {"created_at": int(time.time())}
    cid = state.ws.store.put(canonical_json(doc))
    return DatasetParams(**{**params.__dict__, "metadata_digest": digest_of_cid(str(cid))})
