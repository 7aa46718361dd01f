"""What users do with a dataset, shared by the CLI, the web app and the demo.

Each operation validates its input completely before the first transaction is
sent, so bad input changes nothing: a wrong label, a duplicate item or an
unknown dataset is reported while the chain and the index stay as they were.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from databright.chain import DatasetParams
from databright.errors import InputError
from databright.storage import Manifest, canonical_json, digest_of_cid, manifest_from_folder, manifest_from_table
from databright.workspace import Workspace

__all__ = [
    "Batch",
    "DatasetMetadata",
    "check_batch",
    "create_dataset",
    "evaluation_metadata",
    "load_batch",
    "propose_batch",
    "read_metadata",
]

TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}


@dataclass(frozen=True)
class DatasetMetadata:
    """What a dataset says about itself; stored as a JSON blob, its CID on-chain."""

    name: str
    description: str = ""
    kind: str = "files"  # "files" (one file per item) or "table" (one row per item)
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
    """A proposal's items, uploaded, with its manifest CID."""

    manifest: Manifest
    manifest_cid: str

    @property
    def size(self) -> int:
        return len(self.manifest)


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
) -> Batch:
    """Upload a folder of files (with a labels CSV) or a CSV/Parquet table."""
    source = Path(source)
    if source.is_dir():
        csv_path = labels_csv or source / "labels.csv"
        if not csv_path.is_file():
            raise InputError(f"no labels CSV {csv_path}; pass --labels FILE")
        manifest, cid = manifest_from_folder(
            ws.store, source, csv_path, file_column=file_column, label_column=label_column
        )
    elif source.is_file():
        if source.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(f"{source} is neither a folder nor a .csv/.tsv/.parquet table")
        manifest, cid = manifest_from_table(ws.store, source, label_column=label_column)
    else:
        raise InputError(f"no such file or folder: {source}")
    return Batch(manifest, str(cid))


def _check_labels(batch: Batch, allowed: list[str]) -> None:
    if not allowed:
        return
    permitted = set(allowed)
    for position, item in enumerate(batch.manifest):
        if item.label not in permitted:
            raise InputError(
                f"item {position} has label {item.label!r}, not one of the dataset's labels: {', '.join(allowed)}"
            )


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

    Labels in the dataset's label set; no item already accepted and no item
    twice, unless ``allow_duplicates`` (then they are flagged). Returns how many
    items are already in the dataset. Used by every client (CLI, web, wallet
    flows), so a batch that passes here is one any of them would propose.
    """
    ws.sync()
    ws.index.dataset(dataset_id)
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
    ws: Workspace, metadata: DatasetMetadata, validation: Batch, sample: Batch | None, policy: dict[str, Any]
) -> DatasetMetadata:
    """Add what an evaluator needs: the validation split, a default model spec, the reward policy.

    The model spec is chosen from the data (an MLP for tables and small images,
    a small CNN for larger images) with the seed and validation items as sample.
    """
    from databright.ml import default_spec  # torch: imported only when a model is involved
    from databright.valuation import RewardPolicy

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
    if metadata.kind not in {"files", "table"}:
        raise InputError(f"unknown dataset kind {metadata.kind!r}: use files or table")
    if not metadata.name.strip():
        raise InputError("a dataset needs a name")
    if params.evaluation_required and int(params.evaluator, 16) == 0:
        raise InputError("a dataset that requires evaluations needs an evaluator")
    if seed is not None:
        _check_labels(seed, list(metadata.labels))
        _check_repeats(seed, set(), "the seed", allow_duplicates=False)
        needed = params.proposal_bond
        if ws.ledger.balance(signer.address) < needed:
            raise InputError(f"{signer.address} cannot pay the seed's proposal bond of {needed} wei")
    doc = metadata.to_json() | {"created_at": int(time.time())}
    meta_cid = ws.store.put(canonical_json(doc))
    interim = seed is not None and params.evaluation_required
    final_evaluator = params.evaluator
    params = DatasetParams(
        **{
            **params.__dict__,
            "metadata_digest": digest_of_cid(str(meta_cid)),
            "evaluator": signer.address if interim else params.evaluator,
        }
    )
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
