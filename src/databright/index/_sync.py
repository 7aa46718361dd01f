"""Feeding the index from DataMarket events.

``Index.sync`` reads events after the stored cursor in block ranges and applies
each range in one database transaction that first claims the range by moving
the cursor, so an interrupted sync resumes exactly where the last committed range
ended and concurrent syncs never apply a range twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from databright.index._models import (
    STAKE_ZERO,
    DatasetRow,
    HolderRow,
    ItemRow,
    LabelCountRow,
    ProposalRow,
    RevenueRow,
    VoteRow,
)
from databright.storage import batch_commitment

if TYPE_CHECKING:  # the contract clients import web3; the events come from their caller
    from databright.chain import Event

__all__ = ["ItemRecord", "Loaders", "apply_events", "apply_metadata", "attach_manifest", "record_deposit"]

ZERO = "0x" + "00" * 20

ItemRecord = tuple[str, str, dict[str, Any]]


class Loaders:
    """How the indexer turns on-chain digests into CIDs and reads their blobs.

    ``manifest(cid)`` returns the items of a manifest or ``None`` when the blob
    is not reachable from here; ``metadata(cid)`` the dataset metadata object.
    """

    def __init__(
        self,
        cid_of_digest: Callable[[bytes], str],
        manifest: Callable[[str], list[ItemRecord] | None],
        metadata: Callable[[str], dict[str, Any] | None],
    ) -> None:
        self.cid_of_digest = cid_of_digest
        self.manifest = manifest
        self.metadata = metadata


def _dataset(session: Session, dataset_id: int) -> DatasetRow:
    row = session.get(DatasetRow, dataset_id)
    assert row is not None, f"event for unindexed dataset {dataset_id}"
    return row


def _holder(session: Session, dataset_id: int, holder: str) -> HolderRow:
    row = session.get(HolderRow, (dataset_id, holder))
    if row is None:
        row = HolderRow(dataset_id=dataset_id, holder=holder, balance=0, withdrawn=0, stake=STAKE_ZERO)
        session.add(row)
    return row


def _move(session: Session, dataset: DatasetRow, holder: str, amount: int) -> None:
    row = _holder(session, dataset.dataset_id, holder)
    before = row.balance
    row.set_balance(before + amount)
    dataset.holder_count += (row.balance > 0) - (before > 0)


def _transfer(session: Session, dataset_id: int, sender: str, receiver: str, amount: int) -> None:
    dataset = session.get(DatasetRow, dataset_id)
    if dataset is None:
        return
    if sender == ZERO:
        dataset.total_supply += amount
    else:
        _move(session, dataset, sender, -amount)
    if receiver == ZERO:
        dataset.total_supply -= amount
    else:
        _move(session, dataset, receiver, amount)


def apply_metadata(dataset: DatasetRow, meta: dict[str, Any] | None) -> None:
    dataset.metadata_available = meta is not None
    meta = meta or {}
    dataset.name = str(meta.get("name", f"dataset {dataset.dataset_id}"))[:200]
    dataset.description = str(meta.get("description", ""))
    dataset.kind = str(meta.get("kind", ""))[:20]
    dataset.metadata_json = json.dumps(meta, sort_keys=True)


def _on_dataset_created(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    dataset = DatasetRow(
        dataset_id=a["dataset_id"],
        creator=a["creator"],
        metadata_cid=loaders.cid_of_digest(a["metadata_digest"]),
        initial_shares=a["initial_shares"],
        quorum_bps=a["quorum_bps"],
        approval_bps=a["approval_bps"],
        voting_period=a["voting_period"],
        proposal_bond=a["proposal_bond"],
        base_reward_per_item=a["base_reward_per_item"],
        max_reward_per_proposal=a["max_reward_per_proposal"],
        evaluation_required=a["evaluation_required"],
        training_fee=a["training_fee"],
        evaluator=a["evaluator"],
        min_accept_delay=a["min_accept_delay"],
        max_mint_bps=a["max_mint_bps"],
        min_royalty_bps=a["min_royalty_bps"],
        created_block=e.block_number,
        total_supply=0,
        item_count=0,
        entry_count=0,
        revenue_total=0,
        revenue_withdrawn=0,
        proposal_count=0,
        open_count=0,
        holder_count=0,
    )
    apply_metadata(dataset, loaders.metadata(dataset.metadata_cid))
    session.add(dataset)
    session.flush()


def _on_evaluator_changed(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    dataset = _dataset(session, a["dataset_id"])
    # A change still pending when the next one is made was replaced by it.
    dataset.evaluator = dataset.evaluator_at(a["changed_at"])
    dataset.next_evaluator = dataset.next_evaluator_at = None
    if a["effective_at"] <= a["changed_at"]:
        dataset.evaluator = a["evaluator"]
    else:
        dataset.next_evaluator, dataset.next_evaluator_at = a["evaluator"], a["effective_at"]


def _manifest_matches(proposal: ProposalRow, items: list[ItemRecord]) -> bool:
    """Whether ``items`` are the batch the proposer committed to on chain."""
    return batch_commitment([(cid, label) for cid, label, _ in items]) == (proposal.item_count, proposal.root.lower())


def attach_manifest(session: Session, proposal: ProposalRow, items: list[ItemRecord]) -> None:
    """Store a proposal's loaded manifest: its items, duplicate flags and match flag.

    An item repeats an accepted item of the dataset (``duplicate_of`` = the
    accepting proposal) or an earlier item of the same batch (``duplicate_of`` =
    this proposal). A manifest that arrives after its proposal was accepted is
    compared with the entries accepted before it only.
    """
    proposal.manifest_available = True
    proposal.manifest_matches = _manifest_matches(proposal, items)
    accepted = proposal.status == "accepted"
    cids = {c for c, _, _ in items}
    query = (
        select(ItemRow.cid, ItemRow.proposal_id)
        .join(ProposalRow, ProposalRow.proposal_id == ItemRow.proposal_id)
        .where(
            ItemRow.dataset_id == proposal.dataset_id,
            ItemRow.accepted.is_(True),
            ItemRow.proposal_id != proposal.proposal_id,
            ItemRow.cid.in_(cids),
        )
        .order_by(ProposalRow.entry_index.desc())
    )
    if accepted and proposal.entry_index is not None:
        query = query.where(ProposalRow.entry_index < proposal.entry_index)
    known: dict[str, int] = dict(session.execute(query).tuples().all())  # the earliest entry wins
    seen: set[str] = set()
    duplicates = 0
    for position, (item_cid, label, metadata) in enumerate(items):
        duplicate = known.get(item_cid)
        if duplicate is None and item_cid in seen:
            duplicate = proposal.proposal_id
        seen.add(item_cid)
        duplicates += duplicate is not None
        session.add(
            ItemRow(
                dataset_id=proposal.dataset_id,
                proposal_id=proposal.proposal_id,
                position=position,
                cid=item_cid,
                label=label,
                metadata_json=json.dumps(metadata, sort_keys=True),
                accepted=accepted,
                duplicate_of=duplicate,
            )
        )
    proposal.duplicate_count = duplicates
    session.flush()
    if accepted:
        _count_labels(session, proposal)
        _flag_open_duplicates(session, proposal)


def _count_labels(session: Session, accepted: ProposalRow) -> None:
    """Add an accepted proposal's items to the dataset's label counts (none yet if its manifest is missing)."""
    query = (
        select(ItemRow.label, func.count())
        .where(ItemRow.proposal_id == accepted.proposal_id)
        .group_by(ItemRow.label)
    )
    for label, count in session.execute(query).tuples():
        row = session.get(LabelCountRow, (accepted.dataset_id, label))
        if row is None:
            session.add(LabelCountRow(dataset_id=accepted.dataset_id, label=label, count=count))
        else:
            row.count += count


def _flag_open_duplicates(session: Session, accepted: ProposalRow) -> None:
    """Flag the items of the dataset's open proposals that ``accepted`` just added."""
    added = select(ItemRow.cid).where(ItemRow.proposal_id == accepted.proposal_id)
    open_ids = select(ProposalRow.proposal_id).where(
        ProposalRow.dataset_id == accepted.dataset_id,
        ProposalRow.status == "open",
        ProposalRow.proposal_id != accepted.proposal_id,
    )
    stale = (
        ItemRow.dataset_id == accepted.dataset_id,
        ItemRow.proposal_id.in_(open_ids),
        ItemRow.duplicate_of.is_(None),
        ItemRow.cid.in_(added),
    )
    affected = set(session.scalars(select(ItemRow.proposal_id).where(*stale).distinct()))
    if not affected:
        return
    session.execute(
        update(ItemRow)
        .where(*stale)
        .values(duplicate_of=accepted.proposal_id)
        .execution_options(synchronize_session=False)
    )
    for proposal_id in affected:
        count = session.scalar(
            select(func.count())
            .select_from(ItemRow)
            .where(ItemRow.proposal_id == proposal_id, ItemRow.duplicate_of.is_not(None))
        )
        row = session.get(ProposalRow, proposal_id)
        assert row is not None
        row.duplicate_count = int(count or 0)


def _on_proposal_created(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    cid = loaders.cid_of_digest(a["manifest_digest"])
    proposal = ProposalRow(
        proposal_id=a["proposal_id"],
        dataset_id=a["dataset_id"],
        contributor=a["contributor"],
        root="0x" + a["root"].hex(),
        manifest_cid=cid,
        manifest_available=False,
        manifest_matches=None,
        item_count=a["item_count"],
        bond=a["bond"],
        snapshot_block=a["snapshot_block"],
        deadline=a["deadline"],
        created_block=e.block_number,
        tx_hash="0x" + e.tx_hash,
        evaluator=a["evaluator"],
        yes_votes=0,
        no_votes=0,
        voter_count=0,
        status="open",
        evaluated=False,
        shares_minted=0,
        duplicate_count=0,
    )
    session.add(proposal)
    dataset = _dataset(session, proposal.dataset_id)
    dataset.proposal_count += 1
    dataset.open_count += 1
    session.flush()
    items = loaders.manifest(cid)
    if items is not None:
        attach_manifest(session, proposal, items)


def _on_vote_cast(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    proposal = session.get(ProposalRow, a["proposal_id"])
    assert proposal is not None
    if a["support"]:
        proposal.yes_votes += a["weight"]
    else:
        proposal.no_votes += a["weight"]
    proposal.voter_count += 1
    session.add(
        VoteRow(
            proposal_id=a["proposal_id"],
            voter=a["voter"],
            support=a["support"],
            weight=a["weight"],
            block=e.block_number,
            tx_hash="0x" + e.tx_hash,
        )
    )


def _on_evaluation_posted(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    proposal = session.get(ProposalRow, a["proposal_id"])
    assert proposal is not None
    proposal.evaluated = True
    proposal.value = a["value"]
    proposal.eval_shares = a["shares"]
    proposal.report_cid = loaders.cid_of_digest(a["report_digest"])


def _on_proposal_finalized(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    proposal = session.get(ProposalRow, a["proposal_id"])
    assert proposal is not None
    proposal.status = "accepted" if a["accepted"] else "rejected"
    proposal.expired = a["expired"]
    proposal.yes_votes = a["yes_votes"]
    proposal.no_votes = a["no_votes"]
    proposal.shares_minted = a["shares_minted"]
    proposal.finalized_block = e.block_number
    dataset = _dataset(session, a["dataset_id"])
    dataset.open_count -= 1
    if a["accepted"]:
        proposal.entry_index = a["entry_index"]
        dataset.entry_count += 1
        dataset.item_count += proposal.item_count
        session.execute(
            update(ItemRow)
            .where(ItemRow.proposal_id == proposal.proposal_id)
            .values(accepted=True)
            .execution_options(synchronize_session=False)
        )
        _count_labels(session, proposal)
        _flag_open_duplicates(session, proposal)


def record_deposit(session: Session, e: Event, source: str | None = None, source_id: int | None = None) -> RevenueRow:
    """Apply a RevenueDeposited event; ``source`` when the paying contract's own event said why it paid."""
    a = e.args
    _dataset(session, a["dataset_id"]).revenue_total += a["amount"]
    kind = "bond" if a["kind"] == 1 else "payment"
    row = RevenueRow(
        dataset_id=a["dataset_id"],
        account=a["payer"],
        amount=a["amount"],
        kind=kind,
        block=e.block_number,
        tx_hash="0x" + e.tx_hash,
        source=source or ("forfeited_bond" if kind == "bond" else "payment"),
        source_id=source_id,
    )
    session.add(row)
    return row


def _on_revenue_deposited(session: Session, e: Event, loaders: Loaders) -> None:
    record_deposit(session, e)


def _on_revenue_withdrawn(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    _dataset(session, a["dataset_id"]).revenue_withdrawn += a["amount"]
    _holder(session, a["dataset_id"], a["holder"]).withdrawn += a["amount"]
    session.add(
        RevenueRow(
            dataset_id=a["dataset_id"],
            account=a["holder"],
            amount=a["amount"],
            kind="withdrawal",
            block=e.block_number,
            tx_hash="0x" + e.tx_hash,
        )
    )


def _on_transfer_single(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    _transfer(session, a["_id"], a["_from"], a["_to"], a["_value"])


def _on_transfer_batch(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    for token_id, amount in zip(a["_ids"], a["_values"], strict=True):
        _transfer(session, token_id, a["_from"], a["_to"], amount)


_HANDLERS: dict[str, Callable[[Session, Event, Loaders], None]] = {
    "DatasetCreated": _on_dataset_created,
    "EvaluatorChanged": _on_evaluator_changed,
    "ProposalCreated": _on_proposal_created,
    "VoteCast": _on_vote_cast,
    "EvaluationPosted": _on_evaluation_posted,
    "ProposalFinalized": _on_proposal_finalized,
    "RevenueDeposited": _on_revenue_deposited,
    "RevenueWithdrawn": _on_revenue_withdrawn,
    "TransferSingle": _on_transfer_single,
    "TransferBatch": _on_transfer_batch,
}


def apply_events(session: Session, events: Iterable[Event], loaders: Loaders) -> int:
    """Apply events in chain order; returns how many were handled."""
    count = 0
    for event in events:
        handler = _HANDLERS.get(event.name)
        if handler is not None:
            handler(session, event, loaders)
            count += 1
    return count
