"""A model market history on any chain, and a snapshot of what the index mirrors of it.

Shared by the index tests on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from databright.chain import DataMarket, DatasetParams, Ledger, compile_contract
from databright.chain.deploy import Deployment, add_model_market
from databright.chain.modelmarket import CHALLENGE_PERIOD, ModelMarket
from databright.index import (
    Index,
    channels_of,
    contributor_impact,
    dataset_impact,
    list_models,
    model_prices,
    model_versions,
    redemptions,
    revenue_by_source,
)
from databright.models import VoucherDomain
from databright.storage import BlobStore, Manifest, ManifestItem, digest_of_cid

FEE = 10**17
PRICE = 10**12
BOND = 10**16


@dataclass(frozen=True)
class ModelHistory:
    models: ModelMarket
    dataset_id: int
    model_id: int
    channel_id: int
    contributor: str
    user: str


def deploy_model_market(ledger: Ledger, account: LocalAccount, data_market: str, cache: Path) -> ModelMarket:
    deployment = Deployment(ledger.chain_id, {"DataMarket": {"address": data_market}}, {}, "", account.address)
    add_model_market(ledger, account, deployment, cache)
    return ModelMarket(ledger, deployment.address("ModelMarket"), compile_contract("model_market", cache).abi)


def model_history(market: DataMarket, models: ModelMarket, accounts: list[LocalAccount], store: BlobStore,
                  advance: Callable[[int], None]) -> ModelHistory:
    """accounts[0] creates a dataset (evaluator accounts[3]); accounts[1] contributes to it;
    accounts[2] registers a model, publishes a second version and doubles its price;
    accounts[3] verifies both versions, opens a channel, buys 200 predictions (redeemed in
    two vouchers), tops up, closes and settles; a rejected proposal forfeits its bond; a direct
    payment arrives."""
    creator, contributor, owner, user = accounts[:4]
    dataset_id = market.create_dataset(creator, DatasetParams(
        metadata_digest=b"\x05" * 32, initial_shares=1000, proposal_bond=BOND, training_fee=FEE,
        evaluator=user.address, min_accept_delay=0, max_mint_bps=10_000))

    def propose(*names: str) -> int:
        manifest = Manifest([ManifestItem(store.put(n.encode()), n) for n in names])
        manifest.save(store)
        return market.propose(contributor, dataset_id, manifest.root, digest_of_cid(manifest.cid), len(manifest))

    accepted = propose("a", "b", "c", "d", "e")
    market.vote(creator, accepted, True)
    market.finalize(creator, accepted)
    model_id = models.register(owner, dataset_id, b"\x51" * 32, b"\x52" * 32, b"\x53" * 32, 800_000, PRICE, 1000)
    models.post_verified_score(user, model_id, 1, 790_000, b"\x61" * 32)
    models.publish_version(owner, model_id, b"\x51" * 32, b"\x54" * 32, b"\x55" * 32, 850_000)
    models.post_verified_score(user, model_id, 2, 840_000, b"\x62" * 32)
    second = models.register(owner, dataset_id, b"\x51" * 32, b"\x56" * 32, b"\x57" * 32, 700_000, PRICE, 500)
    models.post_verified_score(user, second, 1, 810_000, b"\x63" * 32)
    domain = VoucherDomain(models.ledger.chain_id, models.address)
    channel_id = models.open_channel(user, model_id, 200 * PRICE)
    first = domain.sign(user, channel_id, 120 * PRICE)
    models.redeem(owner, channel_id, first.amount, first.signature)
    last = domain.sign(user, channel_id, 200 * PRICE)
    models.redeem(owner, channel_id, last.amount, last.signature)
    models.set_price(owner, model_id, 2 * PRICE)
    models.top_up(user, channel_id, 10 * PRICE)
    models.close(user, channel_id)
    advance(models.challenge_period() + 1)
    models.settle(user, channel_id)
    rejected = propose("x", "y")
    market.vote(creator, rejected, False)
    market.finalize(creator, rejected)
    market.deposit(owner, dataset_id, 3 * PRICE)
    return ModelHistory(models, dataset_id, model_id, channel_id, contributor.address, user.address)


def model_snapshot(index: Index, history: ModelHistory) -> dict[str, object]:
    """Everything the index says about the model market, as plain values."""
    models = list_models(index)
    return {
        "models": [(m.model_id, m.dataset_id, m.owner, m.price, m.royalty_bps, m.training_fee, m.version_count,
                    m.predictions, m.revenue, m.royalties) for m in models],
        "versions": [(v.model_id, v.version, v.checkpoint_cid, v.report_cid, v.claimed_score, v.verified_score,
                      v.verification_cid, v.verifier) for m in models for v in model_versions(index, m.model_id)],
        "prices": [(p.model_id, p.price, p.block) for m in models for p in model_prices(index, m.model_id)],
        "channels": [(c.channel_id, c.model_id, c.deposit, c.redeemed, c.state, c.refund)
                     for c in channels_of(index, history.user)],
        "redemptions": [(r.channel_id, r.amount, r.paid, r.royalty, r.price, r.predictions)
                        for m in models for r in redemptions(index, m.model_id)],
        "revenue": revenue_by_source(index, history.dataset_id),
        "impact": dataset_impact(index, history.dataset_id),
        "contributor": contributor_impact(index, history.contributor),
    }


__all__ = ["BOND", "CHALLENGE_PERIOD", "FEE", "PRICE", "ModelHistory", "deploy_model_market", "model_history",
           "model_snapshot"]
