"""Reading the model market out of the index: models, channels, revenue by source, impact.

Functions of an ``Index`` rather than methods, so the model market's reads
live beside its tables. The web API, the dashboard and the CLI use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from databright.errors import NotFound
from databright.index._model_rows import ChannelRow, ModelIncomeRow, ModelRow, ModelVersionRow, PriceRow, RedemptionRow
from databright.index._models import ProposalRow, RevenueRow

if TYPE_CHECKING:  # the Index re-exports this module
    from databright.index import Index

__all__ = [
    "ContributorImpact",
    "ModelImpact",
    "REVENUE_SOURCES",
    "best_verified",
    "channels_of",
    "contributor_impact",
    "dataset_impact",
    "get_model",
    "list_models",
    "model_income",
    "model_prices",
    "model_versions",
    "redemptions",
    "revenue_by_source",
]

# Every source a dataset's revenue is reported under, in this order.
REVENUE_SOURCES = ("training_fee", "royalty", "forfeited_bond", "payment")


def list_models(index: Index, *, dataset_id: int | None = None, owner: str | None = None) -> list[ModelRow]:
    query = select(ModelRow).order_by(ModelRow.model_id)
    if dataset_id is not None:
        query = query.where(ModelRow.dataset_id == dataset_id)
    if owner is not None:
        query = query.where(func.lower(ModelRow.owner) == owner.lower())
    with index.session() as session:
        return list(session.scalars(query))


def get_model(index: Index, model_id: int) -> ModelRow:
    with index.session() as session:
        row = session.get(ModelRow, model_id)
        if row is None:
            raise NotFound("model", model_id, session.scalars(select(ModelRow.model_id)).all())
        return row


def model_versions(index: Index, model_id: int) -> list[ModelVersionRow]:
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model_id).order_by(ModelVersionRow.version)
    with index.session() as session:
        return list(session.scalars(query))


def model_prices(index: Index, model_id: int) -> list[PriceRow]:
    with index.session() as session:
        return list(session.scalars(select(PriceRow).where(PriceRow.model_id == model_id).order_by(PriceRow.id)))


def redemptions(index: Index, model_id: int) -> list[RedemptionRow]:
    query = select(RedemptionRow).where(RedemptionRow.model_id == model_id).order_by(RedemptionRow.id)
    with index.session() as session:
        return list(session.scalars(query))


def model_income(index: Index, model_id: int) -> list[ModelIncomeRow]:
    """What each holder of the model's dataset was paid by it, largest first."""
    with index.session() as session:
        rows = list(session.scalars(select(ModelIncomeRow).where(ModelIncomeRow.model_id == model_id)))
    return sorted(rows, key=lambda r: (-(r.training_fee + r.royalties), r.holder))


def channels_of(index: Index, user: str) -> list[ChannelRow]:
    query = select(ChannelRow).where(func.lower(ChannelRow.user) == user.lower()).order_by(ChannelRow.channel_id)
    with index.session() as session:
        return list(session.scalars(query))


def revenue_by_source(index: Index, dataset_id: int) -> dict[str, int]:
    """Wei paid into the dataset per source (every source listed, zero included)."""
    totals = dict.fromkeys(REVENUE_SOURCES, 0)
    query = select(RevenueRow.source, RevenueRow.amount).where(
        RevenueRow.dataset_id == dataset_id, RevenueRow.kind != "withdrawal")
    with index.session() as session:
        # Amounts are decimal text (beyond 64 bits): summed here, not by SQL.
        for source, amount in session.execute(query).tuples():
            key = source or "payment"
            totals[key] = totals.get(key, 0) + amount
    return totals


def best_verified(versions: list[ModelVersionRow]) -> int | None:
    """A model's best verified score (ppm) over its versions; None when none is verified."""
    scores = [v.verified_score for v in versions if v.verified_score is not None]
    return max(scores) if scores else None


@dataclass(frozen=True)
class ModelImpact:
    """A model trained on a dataset, and how far it moved the dataset's best verified score."""

    model_id: int
    owner: str
    registered_block: int
    claimed_score_ppm: int
    verified_score_ppm: int | None
    # Its best verified score minus the best of the models registered before
    # it; None when it is unverified or the first verified one.
    improvement_ppm: int | None
    training_fee_wei: int
    royalties_wei: int
    predictions: int


def dataset_impact(index: Index, dataset_id: int) -> list[ModelImpact]:
    """The models trained on a dataset, in registration order, each against the previous best."""
    out: list[ModelImpact] = []
    best: int | None = None
    for m in list_models(index, dataset_id=dataset_id):
        versions = model_versions(index, m.model_id)
        score = best_verified(versions)
        improvement = None if score is None or best is None else score - best
        if score is not None:
            best = score if best is None else max(best, score)
        out.append(ModelImpact(
            model_id=m.model_id, owner=m.owner, registered_block=m.registered_block,
            claimed_score_ppm=versions[-1].claimed_score if versions else 0, verified_score_ppm=score,
            improvement_ppm=improvement, training_fee_wei=m.training_fee, royalties_wei=m.royalties,
            predictions=m.predictions,
        ))
    return out


@dataclass(frozen=True)
class ContributorImpact:
    """A model trained on data an account contributed, and what it has paid that account."""

    dataset_id: int
    model_id: int
    contributed_items: int  # the account's accepted items the model could train on
    training_fee_wei: int
    royalties_wei: int

    @property
    def paid_wei(self) -> int:
        return self.training_fee_wei + self.royalties_wei


def contributor_impact(index: Index, address: str) -> list[ContributorImpact]:
    """Per model trained on a dataset after the account's data was accepted into it.

    What a model paid the account is its pro rata part, at each payment, of the
    model's training fee and royalties (``ModelIncomeRow``); an account paid
    as a holder without having contributed is listed too (contributed_items 0).
    """
    with index.session() as session:
        entries = session.execute(
            select(ProposalRow.dataset_id, ProposalRow.finalized_block, ProposalRow.item_count).where(
                func.lower(ProposalRow.contributor) == address.lower(), ProposalRow.status == "accepted")
        ).tuples().all()
        income = {(r.dataset_id, r.model_id): r for r in session.scalars(
            select(ModelIncomeRow).where(func.lower(ModelIncomeRow.holder) == address.lower()))}
        datasets = {d for d, _, _ in entries} | {d for d, _ in income}
        trained = list(session.scalars(
            select(ModelRow).where(ModelRow.dataset_id.in_(datasets)).order_by(ModelRow.model_id)))
    out = []
    for m in trained:
        items = sum(n for d, block, n in entries if d == m.dataset_id and (block or 0) <= m.registered_block)
        paid = income.get((m.dataset_id, m.model_id))
        if items or paid is not None:
            out.append(ContributorImpact(m.dataset_id, m.model_id, items, paid.training_fee if paid else 0,
                                         paid.royalties if paid else 0))
    return out
