"""Index rows turned into API bodies, and the tally rule as pages explain it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from databright.index import DatasetRow, HolderRow, ItemRow, ProposalRow, revenue_by_source
from databright.web._state import WebState
from databright.web.schemas import DatasetPublic, HolderPublic, ItemPublic, ProposalPublic, TallyPublic

__all__ = ["dataset_public", "holders_public", "item_public", "metadata", "page_of", "proposal_public", "tally"]

T = TypeVar("T")

_BPS = 10_000


def metadata(row: DatasetRow) -> dict[str, Any]:
    try:
        data = json.loads(row.metadata_json or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def dataset_public(state: WebState, row: DatasetRow) -> DatasetPublic:
    meta = metadata(row)
    return DatasetPublic(
        dataset_id=row.dataset_id, name=row.name or f"dataset {row.dataset_id}", description=row.description,
        kind=row.kind, labels=[str(x) for x in meta.get("labels", [])], license=str(meta.get("license", "")),
        creator=row.creator, items=row.item_count, entries=row.entry_count,
        shareholders=row.holder_count,
        total_shares=row.total_supply, revenue_total_wei=row.revenue_total,
        revenue_withdrawn_wei=row.revenue_withdrawn,
        revenue_by_source=revenue_by_source(state.ws.index, row.dataset_id),
        open_proposals=row.open_count,
        quorum_bps=row.quorum_bps, approval_bps=row.approval_bps, voting_period_s=row.voting_period,
        proposal_bond_wei=row.proposal_bond, evaluation_required=row.evaluation_required,
        evaluator=row.evaluator, metadata_cid=row.metadata_cid,
    )


def holders_public(dataset: DatasetRow, rows: Iterable[HolderRow]) -> list[HolderPublic]:
    supply = dataset.total_supply
    return [HolderPublic(address=h.holder, shares=h.balance, fraction=h.balance / supply if supply else 0.0,
                         withdrawn_wei=h.withdrawn) for h in rows]


def tally(state: WebState, p: ProposalRow, d: DatasetRow) -> TallyPublic:
    """Where a vote stands against quorum and approval, and what finalizing would do now."""
    supply = state.snapshot_supply(p.proposal_id)
    cast = p.yes_votes + p.no_votes
    left = max(0, int(p.deadline - state.now()))
    opened = p.deadline - d.voting_period
    if p.status != "open":
        outcome = "expired" if p.expired else p.status
    elif d.evaluation_required and not p.evaluated:
        outcome = "awaiting evaluation" if left > 0 else "expires when finalized"
    elif 2 * p.yes_votes > supply and (p.yes_votes == supply or state.now() >= opened + d.min_accept_delay):
        outcome = "accepted when finalized"
    elif 2 * p.no_votes > supply:
        outcome = "rejected when finalized"
    elif left > 0:
        outcome = "voting"
    else:
        passed = cast > 0 and cast * _BPS >= d.quorum_bps * supply and p.yes_votes * _BPS >= d.approval_bps * cast
        outcome = ("accepted" if passed else "rejected") + " when finalized"
    return TallyPublic(
        yes=p.yes_votes, no=p.no_votes, voters=p.voter_count, snapshot_supply=supply,
        quorum_needed=-(-supply * d.quorum_bps // _BPS), participation=cast / supply if supply else 0.0,
        approval=p.yes_votes / cast if cast else 0.0, approval_needed=d.approval_bps / _BPS,
        time_left_s=left if p.status == "open" else 0, outcome=outcome,
    )


def proposal_public(state: WebState, p: ProposalRow, d: DatasetRow | None = None) -> ProposalPublic:
    d = d or state.ws.index.dataset(p.dataset_id)
    return ProposalPublic(
        proposal_id=p.proposal_id, dataset_id=p.dataset_id, contributor=p.contributor, items=p.item_count,
        status=p.status, bond_wei=p.bond, deadline=p.deadline, manifest_cid=p.manifest_cid, root=p.root,
        evaluated=p.evaluated, report_cid=p.report_cid, shares_minted=p.shares_minted,
        duplicates=p.duplicate_count, manifest_matches=p.manifest_matches, entry_index=p.entry_index,
        tally=tally(state, p, d),
    )


def item_public(row: ItemRow) -> ItemPublic:
    try:
        meta = json.loads(row.metadata_json or "{}")
    except ValueError:
        meta = {}
    filename = str(meta.get("filename", "")) if isinstance(meta, dict) else ""
    return ItemPublic(cid=row.cid, label=row.label, proposal_id=row.proposal_id, position=row.position,
                      accepted=row.accepted, duplicate_of=row.duplicate_of, filename=filename)


def page_of(rows: Sequence[T], page: int, per_page: int) -> tuple[list[T], int, int]:
    """Rows of page ``page`` (from 1; clamped to the last) of a short list held in memory, that page
    number, and how many pages there are. Lists that grow with a dataset page in SQL instead."""
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(page, 1), pages)
    return list(rows[(page - 1) * per_page: page * per_page]), page, pages
