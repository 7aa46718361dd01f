"""The model market as the pages show it, folded from ModelMarket's events.

Every state change of the market is an event carrying all its values (see
docs/models.md), so the registry, a model's history and revenue, and a user's
channels are a left fold over the event log. The book reads only the blocks it
has not seen, under the web state's lock, and starts over when the chain's
head falls below what it has read (a reset node).

The book also folds DataMarket's ``RevenueDeposited`` events, so a dataset's
revenue splits by source: training fees and prediction royalties (ModelMarket's
own events say which), forfeited bonds (the deposit's kind), and other payments.

``predictions`` is what the redeemed money bought at the price in force when
it was redeemed: the contract never counts predictions, and a voucher that
spans a price change is counted at the newer price.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from databright.chain.datamarket import DataMarket
from databright.chain.modelmarket import Channel, ModelMarket
from databright.storage import cid_from_digest

__all__ = ["FORFEITED_BOND", "ModelBook", "ModelEntry", "RevenueBySource", "VersionEntry"]

FORFEITED_BOND = 1  # DataMarket's KIND_FORFEITED_BOND


def _cid(digest: bytes) -> str:
    return str(cid_from_digest(bytes(digest)))


@dataclass
class VersionEntry:
    number: int
    spec_cid: str
    checkpoint_cid: str
    report_cid: str
    claimed_score: int  # ppm of validation accuracy
    block_number: int
    tx_hash: str
    verified_score: int | None = None
    verification_cid: str | None = None
    evaluator: str | None = None


@dataclass
class ModelEntry:
    model_id: int
    dataset_id: int
    owner: str
    price: int
    royalty_bps: int
    training_fee: int
    registered_block: int
    versions: list[VersionEntry] = field(default_factory=list)
    paid: int = 0  # everything redeemed from channels: owner's part plus royalty
    royalties: int = 0
    redemptions: int = 0
    predictions: int = 0
    channels: int = 0

    @property
    def latest(self) -> VersionEntry:
        return self.versions[-1]

    @property
    def verified_score(self) -> int | None:
        """The score rankings use: the latest version's verified one, if posted."""
        return self.latest.verified_score

    @property
    def revenue(self) -> int:
        """What the owner received: redeemed payments less the royalties."""
        return self.paid - self.royalties


@dataclass
class RevenueBySource:
    training_fees: int = 0
    royalties: int = 0
    forfeited_bonds: int = 0
    payments: int = 0  # every other deposit: `revenue deposit`, a sponsor, a buyer of the data

    @property
    def total(self) -> int:
        return self.training_fees + self.royalties + self.forfeited_bonds + self.payments


class ModelBook:
    """Models and channels of one ModelMarket, kept up to date by :meth:`refresh`."""

    def __init__(self, market: ModelMarket, data_market: DataMarket) -> None:
        self.market = market
        self.data_market = data_market
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.models: dict[int, ModelEntry] = {}
        self.channels: dict[int, Channel] = {}
        self.refunds: dict[int, int] = {}  # settled channel -> what it gave back
        self.revenue: dict[int, RevenueBySource] = {}
        self._next_block = 0

    def refresh(self) -> None:
        """Fold the events of the blocks not yet read."""
        with self._lock:
            head = self.market.ledger.block_number()
            if head + 1 < self._next_block:
                self._clear()
            if head < self._next_block:
                return
            for event in self.market.events(self._next_block, head):
                self._apply(event.name, event.args, event.block_number, event.tx_hash)
            for event in self.data_market.events(self._next_block, head):
                if event.name == "RevenueDeposited":
                    self._deposited(event.args)
            self._next_block = head + 1

    def _deposited(self, a: dict[str, Any]) -> None:
        revenue = self.revenue.setdefault(int(a["dataset_id"]), RevenueBySource())
        if int(a["kind"]) == FORFEITED_BOND:
            revenue.forfeited_bonds += int(a["amount"])
        elif str(a["payer"]).lower() != self.market.address.lower():
            # ModelMarket's deposits are its fees and royalties, counted from its own events.
            revenue.payments += int(a["amount"])

    def _apply(self, name: str, a: dict[str, Any], block: int, tx_hash: str) -> None:
        if name == "ModelRegistered":
            self.revenue.setdefault(int(a["dataset_id"]), RevenueBySource()).training_fees += int(a["training_fee"])
            self.models[int(a["model_id"])] = ModelEntry(
                model_id=int(a["model_id"]), dataset_id=int(a["dataset_id"]), owner=str(a["owner"]),
                price=int(a["price"]), royalty_bps=int(a["royalty_bps"]), training_fee=int(a["training_fee"]),
                registered_block=block)
        elif name == "VersionPublished":
            m = self.models[int(a["model_id"])]
            m.versions.append(VersionEntry(
                number=int(a["version"]), spec_cid=_cid(a["spec_digest"]), checkpoint_cid=_cid(a["checkpoint_digest"]),
                report_cid=_cid(a["report_digest"]), claimed_score=int(a["claimed_score"]), block_number=block,
                tx_hash=tx_hash))
        elif name == "PriceChanged":
            self.models[int(a["model_id"])].price = int(a["price"])
        elif name == "ScoreVerified":
            v = self.models[int(a["model_id"])].versions[int(a["version"]) - 1]
            v.verified_score, v.verification_cid, v.evaluator = (
                int(a["score"]), _cid(a["report_digest"]), str(a["evaluator"]))
        elif name == "ChannelOpened":
            channel_id = int(a["channel_id"])
            self.channels[channel_id] = Channel(channel_id=channel_id, user=str(a["user"]),
                                                model_id=int(a["model_id"]), deposit=int(a["deposit"]),
                                                redeemed=0, closes_at=0, settled=False)
            self.models[int(a["model_id"])].channels += 1
        elif name == "ChannelToppedUp":
            self._update(int(a["channel_id"]), deposit=int(a["deposit"]))
        elif name == "VoucherRedeemed":
            m = self.models[int(a["model_id"])]
            self._update(int(a["channel_id"]), redeemed=int(a["amount"]))
            m.paid += int(a["paid"])
            m.royalties += int(a["royalty"])
            self.revenue.setdefault(m.dataset_id, RevenueBySource()).royalties += int(a["royalty"])
            m.redemptions += 1
            m.predictions += int(a["paid"]) // m.price if m.price else 0
        elif name == "ChannelClosing":
            self._update(int(a["channel_id"]), closes_at=int(a["closes_at"]))
        elif name == "ChannelSettled":
            self._update(int(a["channel_id"]), settled=True)
            self.refunds[int(a["channel_id"])] = int(a["refund"])

    def _update(self, channel_id: int, **changes: Any) -> None:
        self.channels[channel_id] = replace(self.channels[channel_id], **changes)

    # -- reads -------------------------------------------------------------------

    def ranked(self, dataset_id: int | None = None) -> list[ModelEntry]:
        """Models by verified score (verified ones first, best first), then claimed score, then id."""
        models = [m for m in self.models.values() if m.versions and dataset_id in (None, m.dataset_id)]
        return sorted(models, key=lambda m: (m.verified_score is None, -(m.verified_score or 0),
                                             -m.latest.claimed_score, m.model_id))

    def model(self, model_id: int) -> ModelEntry | None:
        return self.models.get(model_id)

    def channels_of(self, user: str, model_id: int | None = None) -> list[Channel]:
        return [c for c in self.channels.values()
                if c.user.lower() == user.lower() and model_id in (None, c.model_id)]

    def impact(self, dataset_id: int) -> list[tuple[ModelEntry, int | None]]:
        """The dataset's models in registration order, each with how much its score (verified, else
        claimed) improved on the best model registered on the dataset before it (None for the first)."""
        out: list[tuple[ModelEntry, int | None]] = []
        best: int | None = None
        for m in sorted((m for m in self.models.values() if m.dataset_id == dataset_id and m.versions),
                        key=lambda m: m.model_id):
            score = m.verified_score if m.verified_score is not None else m.latest.claimed_score
            out.append((m, None if best is None else score - best))
            best = score if best is None else max(best, score)
        return out

    def models_of(self, owner: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.owner.lower() == owner.lower()]
