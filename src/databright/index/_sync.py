"""Feeding the index from DataMarket events.

``Indexer.sync`` reads events after the stored cursor in block ranges and applies
each range in one database transaction together with the new cursor, so an
interrupted sync resumes exactly where the last committed range ended: no event
is applied twice or skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from databright.chain import DataMarket, Event
from databright.index._models import (
    CursorRow,
    DatasetRow,
    HolderRow,
    ItemRow,
    ProposalRow,
    RevenueRow,
    VoteRow,
)

__all__ = ["ItemRecord", "Loaders", "apply_events"]

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
        row = HolderRow(dataset_id=dataset_id, holder=holder, balance=0, withdrawn=0)
        session.add(row)
    return row


def _transfer(session: Session, dataset_id: int, sender: str, receiver: str, amount: int) -> None:
    dataset = session.get(DatasetRow, dataset_id)
    if dataset is None:
        return
    if sender == ZERO:
        dataset.total_supply += amount
    else:
        _holder(session, dataset_id, sender).balance -= amount
    if receiver == ZERO:
        dataset.total_supply -= amount
    else:
        _holder(session, dataset_id, receiver).balance += amount


def _on_dataset_created(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    cid = loaders.cid_of_digest(a["metadata_digest"])
    meta = loaders.metadata(cid) or {}
    session.add(
        DatasetRow(
            dataset_id=a["dataset_id"],
            creator=a["creator"],
            metadata_cid=cid,
            name=str(meta.get("name", f"dataset {a['dataset_id']}"))[:200],
            description=str(meta.get("description", "")),
            kind=str(meta.get("kind", ""))[:20],
            metadata_json=json.dumps(meta, sort_keys=True),
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
            created_block=e.block_number,
            total_supply=0,
            item_count=0,
            entry_count=0,
            revenue_total=0,
            revenue_withdrawn=0,
        )
    )
    session.flush()


def _on_evaluator_changed(session: Session, e: Event, loaders: Loaders) -> None:
    _dataset(session, e.args["dataset_id"]).evaluator = e.args["evaluator"]


def _on_proposal_created(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    cid = loaders.cid_of_digest(a["manifest_digest"])
    items = loaders.manifest(cid)
    proposal = ProposalRow(
        proposal_id=a["proposal_id"],
        dataset_id=a["dataset_id"],
        contributor=a["contributor"],
        root="0x" + a["root"].hex(),
        manifest_cid=cid,
        manifest_available=items is not None,
        item_count=a["item_count"],
        bond=a["bond"],
        snapshot_block=a["snapshot_block"],
        deadline=a["deadline"],
        created_block=e.block_number,
        tx_hash="0x" + e.tx_hash,
        yes_votes=0,
        no_votes=0,
        voter_count=0,
        status="open",
        evaluated=False,
        shares_minted=0,
        duplicate_count=0,
    )
    session.add(proposal)
    session.flush()
    if not items:
        return
    cids = [c for c, _, _ in items]
    known = dict(
        session.execute(
            select(ItemRow.cid, ItemRow.proposal_id).where(
                ItemRow.dataset_id == a["dataset_id"], ItemRow.accepted.is_(True), ItemRow.cid.in_(set(cids))
            )
        ).all()
    )
    for position, (item_cid, label, metadata) in enumerate(items):
        duplicate = known.get(item_cid)
        proposal.duplicate_count += duplicate is not None
        session.add(
            ItemRow(
                dataset_id=a["dataset_id"],
                proposal_id=a["proposal_id"],
                position=position,
                cid=item_cid,
                label=label,
                metadata_json=json.dumps(metadata, sort_keys=True),
                accepted=False,
                duplicate_of=duplicate,
            )
        )


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
    proposal.yes_votes = a["yes_votes"]
    proposal.no_votes = a["no_votes"]
    proposal.shares_minted = a["shares_minted"]
    proposal.finalized_block = e.block_number
    if a["accepted"]:
        proposal.entry_index = a["entry_index"]
        dataset = _dataset(session, a["dataset_id"])
        dataset.entry_count += 1
        dataset.item_count += proposal.item_count
        session.execute(update(ItemRow).where(ItemRow.proposal_id == proposal.proposal_id).values(accepted=True))


def _on_revenue_deposited(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    _dataset(session, a["dataset_id"]).revenue_total += a["amount"]
    kind = "bond" if a["kind"] == 1 else "payment"
    session.add(
        RevenueRow(
            dataset_id=a["dataset_id"],
            account=a["payer"],
            amount=a["amount"],
            kind=kind,
            block=e.block_number,
            tx_hash="0x" + e.tx_hash,
        )
    )


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


def read_cursor(session: Session) -> CursorRow | None:
    return session.get(CursorRow, 1)


def sync_range(market: DataMarket, session: Session, start: int, end: int, loaders: Loaders) -> int:
    return apply_events(session, market.events(start, end), loaders)
