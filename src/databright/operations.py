"""What users do with a dataset, shared by the CLI, the web app and the demo.

Each operation validates its input completely before the first transaction is
sent, so bad input changes nothing: a wrong label, a duplicate item or an
unknown dataset is reported while the chain and the index stay as they were.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databright.errors import InputError
from databright.storage import (
    Manifest,
    batch_commitment,
    cid_from_digest,
    TEXT_FORMATS,
    Progress,
    canonical_json,
    digest_of_cid,
    manifest_from_folder,
    manifest_from_source,
    manifest_from_table,
    row_location,
    table_columns,
    text_source,
)
from databright.workspace import Workspace

if TYPE_CHECKING:  # web3 and eth_account: loaded by the operations that send transactions
    from eth_account.signers.local import LocalAccount

    from databright.chain import DatasetParams, Proposal

__all__ = [
    "Batch",
    "DatasetMetadata",
    "chain_time",
    "check_batch",
    "check_finalize",
    "check_vote",
    "create_dataset",
    "dataset_columns",
    "describe_time",
    "evaluation_metadata",
    "friendly_revert",
    "load_batch",
    "manifest_matches",
    "propose_batch",
    "read_metadata",
]

TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}


@dataclass(frozen=True)
class DatasetMetadata:
    """What a dataset says about itself; stored as a JSON blob, its CID on-chain."""

    name: str
    description: str = ""
    kind: str = "files"  # "files" (one file per item), "table" (one row per item) or "text"
    labels: tuple[str, ...] = ()
    license: str = ""
    extra: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "labels": list(self.labels),
            "license": self.license,
        }
        data.update(dict(self.extra))
        return data


@dataclass(frozen=True)
class Batch:
    """A proposal's items, uploaded, with its manifest CID.

    ``source`` is the file the items were listed in (a table, or the labels CSV
    of a folder), so messages can name the line; ``columns`` are a table's
    feature columns in their order there (the items themselves are canonical
    JSON, whose keys are sorted).
    """

    manifest: Manifest
    manifest_cid: str
    source: Path | None = None
    columns: tuple[str, ...] = ()
    #: For text: "single" (one string per item) or "pair" (source/target), else None.
    text: str | None = None

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def kind(self) -> str:
        """'text' for text items, 'table' when the items are rows of a table, 'files' when they are files."""
        if self.text is not None:
            return "text"
        return "table" if all("row" in item.metadata for item in self.manifest) else "files"

    @property
    def paired(self) -> bool:
        """Whether the items are source/target pairs (parallel text)."""
        return self.text == "pair"

    def locate(self, position: int) -> str:
        """Where the item at ``position`` was listed: 'batch.csv line 8', 'labels.csv line 3 (a.png)'."""
        metadata = self.manifest[position].metadata
        if "line" in metadata and self.source is not None:
            return f"{self.source.name} line {metadata['line']}"
        if "row" in metadata:
            return row_location(self.source, int(metadata["row"]))
        where = row_location(self.source, position) if self.source is not None else f"item {position + 1}"
        return f"{where} ({metadata.get('filename', '')})" if metadata.get("filename") else where


def read_metadata(ws: Workspace, dataset_id: int) -> dict[str, Any]:
    row = ws.index.dataset(dataset_id)
    data = json.loads(row.metadata_json or "{}")
    return data if isinstance(data, dict) else {}


def load_batch(
    ws: Workspace,
    source: Path,
    *,
    labels_csv: Path | None = None,
    file_column: str = "file",
    label_column: str = "label",
    progress: Progress | None = None,
    source_format: str | None = None,
    split: str | None = None,
) -> Batch:
    """Upload a folder of files (with a labels CSV), a CSV/Parquet table, or a
    dataset in one of ``storage.FORMATS`` (``source_format``), in one durable batch."""
    source = Path(source)
    if source_format in TEXT_FORMATS:
        manifest, cid = manifest_from_source(ws.store, source, source_format, split=split, progress=progress,
                                             labels=labels_csv)
        # The importers refuse a source that mixes single texts and pairs; the first item says which.
        layout = "pair" if b"\0" in ws.store.get(manifest[0].cid) else "single"
        return Batch(manifest, str(cid), text_source(source, source_format, split), text=layout)
    if source_format is not None:
        manifest, cid = manifest_from_source(ws.store, source, source_format, split=split, progress=progress,
                                             labels=labels_csv)
        return Batch(manifest, str(cid))
    if source.is_dir():
        csv_path = labels_csv or source / "labels.csv"
        if not csv_path.is_file():
            raise InputError(f"no labels CSV {csv_path}; pass --labels FILE")
        manifest, cid = manifest_from_folder(
            ws.store, source, csv_path, file_column=file_column, label_column=label_column, progress=progress
        )
        return Batch(manifest, str(cid), csv_path)
    if source.is_file():
        if source.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(f"{source} is neither a folder nor a .csv/.tsv/.parquet table")
        manifest, cid = manifest_from_table(ws.store, source, label_column=label_column, progress=progress)
        columns = tuple(c for c in table_columns(source) if c != label_column)
        return Batch(manifest, str(cid), source, columns)
    raise InputError(f"no such file or folder: {source}")


def _check_labels(batch: Batch, allowed: list[str]) -> None:
    if not allowed:
        return
    permitted = set(allowed)
    for position, item in enumerate(batch.manifest):
        if item.label not in permitted:
            raise InputError(
                f"{batch.locate(position)}: label {item.label!r} is not one of the dataset's labels: "
                f"{', '.join(allowed)}"
            )


_KINDS = {
    "files": "files (a folder of files with a labels CSV)",
    "table": "table rows (a CSV or Parquet table)",
    "text": "text (--from text, opennmt, jsonl or text-csv)",
}


def _check_kind(batch: Batch, kind: str, what: str) -> None:
    if batch.kind != kind:
        given = batch.source.name if batch.kind == "table" and batch.source is not None else "this batch"
        raise InputError(f"{what} holds {_KINDS.get(kind, kind)}, but {given} is {_KINDS[batch.kind]}")


def _check_paired(batch: Batch, paired: bool, what: str) -> None:
    if batch.paired != paired:
        holds, given = ("source/target pairs", "single texts") if paired else ("single texts", "source/target pairs")
        raise InputError(f"{what} holds {holds}, but this batch holds {given}")


def _columns_of(ws: Workspace, cid: str) -> list[str]:
    try:
        row = json.loads(ws.store.get(cid))
    except ValueError:
        return []
    return list(row) if isinstance(row, dict) else []


def dataset_columns(ws: Workspace, dataset_id: int) -> list[str]:
    """A table dataset's feature columns: as its seed listed them, else those of its first accepted item."""
    recorded = read_metadata(ws, dataset_id).get("columns")
    if isinstance(recorded, list) and recorded:
        return [str(c) for c in recorded]
    accepted = [p.proposal_id for p in ws.index.proposals(dataset_id=dataset_id, status="accepted")]
    if not accepted:
        return []
    first = ws.index.items(dataset_id, accepted=True, proposal_id=min(accepted))
    return _columns_of(ws, first[0].cid) if first else []


def _check_columns(ws: Workspace, dataset_id: int, batch: Batch) -> None:
    expected = dataset_columns(ws, dataset_id)
    if not expected:
        return  # nothing accepted yet: the first batch sets the columns
    for position, item in enumerate(batch.manifest):
        got = set(_columns_of(ws, str(item.cid)))
        missing = [c for c in expected if c not in got]
        extra = sorted(got - set(expected))
        if missing or extra:
            problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"column(s) {', '.join(extra)} not in the dataset"] if extra else [])
            raise InputError(f"{batch.locate(position)}: {' and '.join(problems)}; "
                             f"dataset {dataset_id} has columns {', '.join(expected)}")
        break  # the rows of one table share its columns


def _check_repeats(batch: Batch, already: set[str], dataset: str, allow_duplicates: bool) -> int:
    cids = [str(c) for c in batch.manifest.item_cids]
    duplicates = already & set(cids)
    within = len(cids) - len(set(cids))
    if (duplicates or within) and not allow_duplicates:
        what = f"{len(duplicates)} item(s) already in {dataset}" if duplicates else ""
        if within:
            what = (what + " and " if what else "") + f"{within} repeated item(s) within the batch"
        raise InputError(f"{what}; remove them or allow duplicates to propose anyway (they are flagged)")
    return len(duplicates)


def check_batch(ws: Workspace, dataset_id: int, batch: Batch, *, allow_duplicates: bool = False) -> int:
    """Everything a proposal of ``batch`` must pass before a transaction is sent.

    Items of the dataset's kind (files or table rows) and, for a table, with
    its columns; labels in the dataset's label set; no item already accepted
    and no item twice, unless ``allow_duplicates`` (then they are flagged).
    Returns how many items are already in the dataset. Used by every client
    (CLI, web, wallet flows), so a batch that passes here is one any of them
    would propose.
    """
    ws.sync()
    dataset = ws.index.dataset(dataset_id)
    if dataset.kind in _KINDS:  # an index row whose metadata was unreadable has no kind
        _check_kind(batch, dataset.kind, f"dataset {dataset_id}")
    if dataset.kind == "table":
        _check_columns(ws, dataset_id, batch)
    if dataset.kind == "text":
        _check_paired(batch, bool(read_metadata(ws, dataset_id).get("paired")), f"dataset {dataset_id}")
    _check_labels(batch, [str(x) for x in read_metadata(ws, dataset_id).get("labels", [])])
    cids = [str(c) for c in batch.manifest.item_cids]
    repeats = _check_repeats(batch, ws.index.accepted_cids(dataset_id, cids), f"dataset {dataset_id}", allow_duplicates)
    holder = ws.index.proposal_holding_root(dataset_id, batch.manifest.root)
    if holder is not None:
        raise InputError(f"this exact batch is already proposal {holder.proposal_id} of dataset {dataset_id} "
                         f"({holder.status}); a root is proposed once")
    return repeats


def propose_batch(
    ws: Workspace, signer: LocalAccount, dataset_id: int, batch: Batch, *, allow_duplicates: bool = False
) -> tuple[int, int]:
    """Propose ``batch`` to a dataset; returns (proposal id, duplicate count)."""
    duplicates = check_batch(ws, dataset_id, batch, allow_duplicates=allow_duplicates)
    proposal_id = ws.market.propose(
        signer, dataset_id, batch.manifest.root, digest_of_cid(batch.manifest_cid), batch.size
    )
    ws.sync()
    return proposal_id, duplicates


def evaluation_metadata(
    ws: Workspace, metadata: DatasetMetadata, validation: Batch | None, sample: Batch | None, policy: dict[str, Any]
) -> DatasetMetadata:
    """Add what an evaluator needs: the validation split, a default model spec, the reward policy.

    The model spec is chosen from the data (an MLP for tables, small images and
    text, a small CNN for larger images) with the seed and validation items as
    sample. Parallel text has no model spec yet: its proposals are valued by
    their duplicate signals alone, and it needs no validation split.
    """
    from databright.ml import default_spec  # torch: imported only when a model is involved
    from databright.valuation import RewardPolicy

    if metadata.kind == "text" and dict(metadata.extra).get("paired"):
        if validation is not None:
            raise InputError("parallel text is valued by duplicate signals, not on a validation split; "
                             "drop --validation")
        extra = dict(metadata.extra) | {"valuation": "signals",
                                        "reward_policy": RewardPolicy.model_validate(policy).model_dump(mode="json")}
        return DatasetMetadata(metadata.name, metadata.description, metadata.kind, metadata.labels,
                               metadata.license, tuple(sorted(extra.items())))
    if validation is None:
        raise InputError("an evaluator needs a validation split: pass --validation")
    batches = [b for b in (sample, validation) if b is not None]
    items = [item for b in batches for item in b.manifest]
    labels = list(metadata.labels) or sorted({item.label for item in items})
    _check_labels(validation, labels)
    spec = default_spec(metadata.kind, [ws.store.get(item.cid) for item in items], [item.label for item in items])
    spec = spec.model_copy(update={"classes": tuple(labels)})
    extra = dict(metadata.extra) | {
        "validation": validation.manifest_cid,
        "model_spec": json.loads(spec.to_json()),
        "reward_policy": RewardPolicy.model_validate(policy).model_dump(mode="json"),
    }
    return DatasetMetadata(metadata.name, metadata.description, metadata.kind, tuple(labels), metadata.license,
                           tuple(sorted(extra.items())))


def create_dataset(
    ws: Workspace,
    signer: LocalAccount,
    metadata: DatasetMetadata,
    params: DatasetParams,
    *,
    seed: Batch | None = None,
) -> tuple[int, int | None]:
    """Create a dataset, optionally seeded with a first batch owned by its creator.

    The seed is proposed, voted for by the creator (the only shareholder, so
    the vote decides at once) and finalized. A seed has nothing to be valued
    against, so when the dataset requires evaluations the creator acts as its
    evaluator for the seed alone — posting the base reward per item, with a
    report saying so — and then hands the role to the dataset's evaluator.
    Returns (dataset id, seed proposal id).
    """
    if metadata.kind not in _KINDS:
        raise InputError(f"unknown dataset kind {metadata.kind!r}: use files, table or text")
    if not metadata.name.strip():
        raise InputError("a dataset needs a name")
    if params.evaluation_required and int(params.evaluator, 16) == 0:
        raise InputError("a dataset that requires evaluations needs an evaluator")
    if seed is not None:
        _check_kind(seed, metadata.kind, f"a {metadata.kind} dataset")
        if metadata.kind == "text":
            _check_paired(seed, bool(dict(metadata.extra).get("paired")), "a text dataset")
        _check_labels(seed, list(metadata.labels))
        _check_repeats(seed, set(), "the seed", allow_duplicates=False)
        needed = params.proposal_bond
        if ws.ledger.balance(signer.address) < needed:
            raise InputError(f"{signer.address} cannot pay the seed's proposal bond of {needed} wei")
    doc = metadata.to_json() | {"created_at": int(time.time())}
    if seed is not None and seed.columns:  # the order people know the columns in, for exports
        doc["columns"] = list(seed.columns)
    meta_cid = ws.store.put(canonical_json(doc))
    interim = seed is not None and params.evaluation_required
    final_evaluator = params.evaluator
    params = replace(params, metadata_digest=digest_of_cid(str(meta_cid)),
                     evaluator=signer.address if interim else params.evaluator)
    dataset_id = ws.market.create_dataset(signer, params)
    ws.sync()
    if seed is None:
        return dataset_id, None
    try:
        proposal_id, _ = propose_batch(ws, signer, dataset_id, seed)
        if interim:
            shares = min(seed.size * params.base_reward_per_item, params.max_reward_per_proposal)
            report = canonical_json({"databright_seed": 1, "dataset_id": dataset_id, "proposal_id": proposal_id,
                                     "items": seed.size, "shares": shares,
                                     "rule": "seed: base_reward_per_item x items, capped"})
            ws.market.post_evaluation(signer, proposal_id, 0, shares, digest_of_cid(str(ws.store.put(report))))
        ws.market.vote(signer, proposal_id, True)
        ws.market.finalize(signer, proposal_id)
    finally:
        if interim:  # whatever happened to the seed, the dataset's evaluator gets its role
            ws.market.set_evaluator(signer, dataset_id, final_evaluator)
        ws.sync()
    return dataset_id, proposal_id


# -- why a vote or a finalization cannot happen ----------------------------------
#
# Read from the chain before anything is sent, so the reason is the proposal's
# real state; a revert that still happens (a race, a rule these checks do not
# know) is translated by ``friendly_revert``.

_BPS = 10_000


def chain_time(ws: Workspace) -> int:
    """The time the next block will carry at the earliest: the head's, or now if later."""
    return max(ws.head.latest_timestamp(), int(time.time()))


def describe_time(when: int, now: int) -> str:
    """'2026-12-01 10:44:12 UTC (in 59m48s)' or '... (3h02m ago)'."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    left = abs(when - now)
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    span = (f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m" if hours
            else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s")
    return f"{stamp} ({'in ' + span if when >= now else span + ' ago'})"


def check_vote(ws: Workspace, proposal_id: int, voter: str, *, support: bool = False) -> int:
    """The voter's weight if they may vote on the proposal now; else why not (InputError).

    A yes vote (``support``) must never approve a manifest that does not match the root or
    item count committed on chain: it is refused too."""
    from databright.chain import ProposalStatus

    p = ws.market.proposal(proposal_id)
    if p.status != ProposalStatus.OPEN:
        raise InputError(f"proposal {proposal_id} is already {p.status_name}; voting on it is over")
    now = chain_time(ws)
    if now > p.deadline:
        raise InputError(f"voting on proposal {proposal_id} closed at {describe_time(p.deadline, now)}; "
                         "finalize it to decide")
    if p.evaluation_required and not p.evaluated:
        raise InputError(f"proposal {proposal_id} waits for its evaluation; voting opens when it is posted")
    if ws.market.has_voted(proposal_id, voter):
        raise InputError(f"{voter} has already voted on proposal {proposal_id}")
    weight = ws.market.voting_power(proposal_id, voter)
    if weight == 0:
        raise InputError(f"{voter} held no shares of dataset {p.dataset_id} at block {p.snapshot_block}, "
                         f"when proposal {proposal_id} was made; cannot vote")
    if support and manifest_matches(ws, p) is False:
        raise InputError(f"proposal {proposal_id}'s manifest does not match its on-chain root or item "
                         "count; vote no")
    return weight


def manifest_matches(ws: Workspace, p: Proposal) -> bool | None:
    """Whether proposal ``p``'s manifest is the batch it committed to on chain, decided as the index
    decides it (None: the store here cannot give the manifest).

    What a manifest commits to is cached under ``HOME/cache/manifests`` by its CID: a CID names
    immutable bytes, so an entry never goes stale, and another vote needs no manifest read or hashing.
    The comparison with the proposal's own root and item count is made every time."""
    cid = cid_from_digest(p.manifest_digest)
    cache = ws.home.cache / "manifests" / f"{cid}.json"
    try:
        commitment = _commitment(json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):  # not computed yet, or unreadable: compute it
        items = ws.manifest_items(cid)
        if items is None:
            return None
        commitment = batch_commitment([(item_cid, label) for item_cid, label, _ in items])
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(commitment))
        tmp.replace(cache)  # whole or absent, even when two votes write it at once
    return commitment == (p.item_count, "0x" + p.root.hex())


def _commitment(cached: Any) -> tuple[int, str] | None:
    if cached is None:
        return None
    count, root = cached
    if not isinstance(count, int) or not isinstance(root, str):
        raise TypeError("not a cached commitment")
    return count, root


def check_finalize(ws: Workspace, proposal_id: int) -> None:
    """Raise InputError saying when the proposal can be finalized, if not now."""
    from databright.chain import ProposalStatus

    p = ws.market.proposal(proposal_id)
    if p.status != ProposalStatus.OPEN:
        raise InputError(f"proposal {proposal_id} is already {p.status_name}")
    now = chain_time(ws)
    if now > p.deadline:
        return
    d = ws.market.dataset(p.dataset_id)
    supply = ws.market.snapshot_supply(proposal_id)
    # The contract decides early only when no later vote could change the outcome.
    accepted_early = (2 * p.yes_votes > supply and p.yes_votes * _BPS >= d.approval_bps * supply
                      and p.yes_votes * _BPS >= d.quorum_bps * supply)
    rejected_early = 2 * p.no_votes > supply and (supply - p.no_votes) * _BPS < d.approval_bps * supply
    when = describe_time(p.deadline + 1, now)
    if p.evaluation_required and not p.evaluated:
        raise InputError(f"proposal {proposal_id} is awaiting evaluation: voting opens when it is posted; "
                         f"without one it expires after {when} and its bond is refunded")
    if not (accepted_early or rejected_early):
        raise InputError(f"voting on proposal {proposal_id} is open; it can be finalized after {when}, "
                         "or earlier once more than half of the snapshot shares vote the same way")


# What a revert reason means to the person who caused it. Only a fallback: the
# checks above explain the usual cases from the chain's state before sending.
_REVERTS = {
    "datamarket: voting open": "voting is still open; see 'proposal show' for when it can be finalized",
    "datamarket: voting closed": "voting on this proposal is closed; finalize it to decide",
    "datamarket: already voted": "this account has already voted on this proposal",
    "datamarket: no voting power": "this account held no shares of the dataset when the proposal was made",
    "datamarket: proposal finalized": "the proposal is already decided",
    "datamarket: evaluation required": "the proposal needs an evaluation before it can be accepted",
    "datamarket: wrong bond": "the bond sent is not the dataset's proposal bond",
    "datamarket: nothing to withdraw": "there is nothing to withdraw",
    "datamarket: not evaluator": "only the dataset's evaluator can post evaluations",
    "datamarket: not creator": "only the dataset's creator can change it",
    "datamarket: unknown dataset": "no such dataset",
    "datamarket: unknown proposal": "no such proposal",
    "datamarket: insufficient balance": "not enough shares",
}


def friendly_revert(reason: str) -> str:
    """A revert reason as a sentence for people; unknown reasons lose only their module prefix."""
    text = reason.strip()
    for raw, friendly in _REVERTS.items():
        if raw in text:
            return f"{friendly} ({raw})"
    return text
