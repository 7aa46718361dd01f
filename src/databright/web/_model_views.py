"""The model market as the API and the pages show it, read from the index only.

``market_models``, ``market_model``, ``dataset_revenue``, ``channels`` and
``models_paid`` return the API's ``*Public`` bodies; the model pages render
the same objects.
"""

from __future__ import annotations

from web3 import Web3

from databright.errors import InputError
from databright.index import (
    ModelImpact,
    ModelRow,
    best_verified,
    channels_of,
    contributor_impact,
    dataset_impact,
    get_model,
    list_models,
    model_income,
    model_prices,
    model_versions,
    redemptions,
    revenue_by_source,
)
from databright.web._state import WebState
from databright.web.schemas import (
    ChannelPublic,
    ContributorImpactPublic,
    MarketModelDetailPublic,
    MarketModelPublic,
    ModelImpactPublic,
    ModelVersionPublic,
    PricePublic,
    RedemptionPublic,
    RevenuePublic,
    RoyaltyPublic,
)

__all__ = ["channels", "dataset_revenue", "market_model", "market_models", "models_paid"]


def _address(text: str) -> str:
    if not Web3.is_address(text):
        raise InputError(f"{text!r} is not an Ethereum address")
    return Web3.to_checksum_address(text)


def _summary(state: WebState, m: ModelRow) -> dict[str, object]:
    rows = model_versions(state.ws.index, m.model_id)
    dataset = state.ws.index.dataset(m.dataset_id)
    return dict(
        model_id=m.model_id, dataset_id=m.dataset_id, dataset=dataset.name or f"dataset {m.dataset_id}",
        owner=m.owner, price_wei=m.price, royalty_bps=m.royalty_bps, training_fee_wei=m.training_fee,
        versions=m.version_count, claimed_score_ppm=rows[-1].claimed_score if rows else 0,
        verified_score_ppm=best_verified(rows), predictions=m.predictions, revenue_wei=m.revenue,
        royalties_wei=m.royalties, registered_block=m.registered_block,
    )


def market_models(state: WebState, *, dataset_id: int | None = None, owner: str | None = None) -> list[MarketModelPublic]:
    """Registered models, best verified score first (unverified last), then by id."""
    rows = list_models(state.ws.index, dataset_id=dataset_id, owner=_address(owner) if owner else None)
    out = [MarketModelPublic.model_validate(_summary(state, m)) for m in rows]
    return sorted(out, key=lambda m: (m.verified_score_ppm is None, -(m.verified_score_ppm or 0), m.model_id))


def market_model(state: WebState, model_id: int) -> MarketModelDetailPublic:
    """One model: version history, price history, redemptions and what each shareholder got from it."""
    index = state.ws.index
    m = get_model(index, model_id)
    history = [ModelVersionPublic(
        version=v.version, spec_cid=v.spec_cid, checkpoint_cid=v.checkpoint_cid, report_cid=v.report_cid,
        claimed_score_ppm=v.claimed_score, verified_score_ppm=v.verified_score, verification_cid=v.verification_cid,
        verifier=v.verifier, block=v.block) for v in model_versions(index, model_id)]
    royalties = [RoyaltyPublic(holder=r.holder, training_fee_wei=r.training_fee, royalties_wei=r.royalties)
                 for r in model_income(index, model_id)]
    return MarketModelDetailPublic.model_validate(_summary(state, m) | dict(
        history=history,
        prices=[PricePublic(price_wei=p.price, block=p.block) for p in model_prices(index, model_id)],
        redemptions=[RedemptionPublic(
            channel_id=r.channel_id, amount_wei=r.amount, paid_wei=r.paid, royalty_wei=r.royalty, price_wei=r.price,
            predictions=r.predictions, block=r.block, tx_hash=r.tx_hash) for r in redemptions(index, model_id)],
        royalties=royalties,
    ))


def _impact(i: ModelImpact) -> ModelImpactPublic:
    return ModelImpactPublic(
        model_id=i.model_id, owner=i.owner, claimed_score_ppm=i.claimed_score_ppm,
        verified_score_ppm=i.verified_score_ppm, improvement_ppm=i.improvement_ppm,
        training_fee_wei=i.training_fee_wei, royalties_wei=i.royalties_wei, predictions=i.predictions)


def dataset_revenue(state: WebState, dataset_id: int) -> RevenuePublic:
    """A dataset's revenue by source, and each model trained on it against the previous best."""
    index = state.ws.index
    row = index.dataset(dataset_id)
    sources = revenue_by_source(index, dataset_id)
    return RevenuePublic(
        dataset_id=dataset_id, total_wei=row.revenue_total, training_fee_wei=sources["training_fee"],
        royalty_wei=sources["royalty"], forfeited_bond_wei=sources["forfeited_bond"], payment_wei=sources["payment"],
        models=[_impact(i) for i in dataset_impact(index, dataset_id)],
    )


def channels(state: WebState, user: str) -> list[ChannelPublic]:
    """The payment channels an account opened: deposit, redeemed (spent) and refundable."""
    return [ChannelPublic(
        channel_id=c.channel_id, model_id=c.model_id, user=c.user, state=c.state,  # type: ignore[arg-type]
        deposit_wei=c.deposit, redeemed_wei=c.redeemed,
        refundable_wei=0 if c.state == "settled" else c.deposit - c.redeemed, refund_wei=c.refund,
        closes_at=c.closes_at) for c in channels_of(state.ws.index, _address(user))]


def models_paid(state: WebState, address: str) -> list[ContributorImpactPublic]:
    """The models trained on data the account contributed, and what each has paid it."""
    return [ContributorImpactPublic(
        dataset_id=c.dataset_id, model_id=c.model_id, contributed_items=c.contributed_items,
        training_fee_wei=c.training_fee_wei, royalties_wei=c.royalties_wei, paid_wei=c.paid_wei)
        for c in contributor_impact(state.ws.index, _address(address))]
