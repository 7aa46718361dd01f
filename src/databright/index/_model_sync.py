"""Feeding the index from ModelMarket events, and naming where a dataset's money comes from.

``apply_all`` applies one block range of DataMarket and ModelMarket events
merged in chain order. A deposit into a dataset (DataMarket's
``RevenueDeposited``) names only its payer; when the payer is a contract whose
own event in the same transaction announced that payment (ModelMarket's
``ModelRegistered`` with its training fee, ``VoucherRedeemed`` with its
royalty; ComputeMarket's ``JobSubmitted`` with its job's training fee), the
deposit is attributed to that event's source. A contract that pays datasets
too adds its event to ``PAYMENT_SOURCES``. Unannounced deposits stay ``payment``, and a rejected
proposal's bond is ``forfeited_bond``.

A model registered from a completed ComputeMarket job pays no training fee
(its ``ModelRegistered`` says 0, and no deposit follows); its
``ModelTrainedOnJob`` names the job, whose fee is then counted as the model's,
and so is what each holder was paid by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from databright.index._model_rows import (
    ChannelRow,
    JobIncomeRow,
    ModelIncomeRow,
    ModelRow,
    ModelVersionRow,
    PriceRow,
    RedemptionRow,
)
from databright.index._models import HolderRow
from databright.index._sync import Loaders, apply_events, record_deposit

if TYPE_CHECKING:  # the contract clients import web3; the events come from their caller
    from databright.chain import Event

__all__ = ["PAYMENT_SOURCES", "PaymentSource", "TaggedEvent", "apply_all"]

# An event with the address of the contract that emitted it.
TaggedEvent = tuple[str, "Event"]


@dataclass(frozen=True)
class PaymentSource:
    """An event by which a contract announces the deposit it makes into a dataset in the same transaction."""

    source: str  # what the dataset's revenue table calls it
    amount: str  # the event argument holding the amount deposited
    ref: str  # the event argument naming what paid (a model id)
    # whether ``ref`` is a ModelMarket model (its holders' income is credited per model);
    # otherwise it is a ComputeMarket job, credited per job until a model registers from it
    by_model: bool


PAYMENT_SOURCES: dict[str, PaymentSource] = {
    "ModelRegistered": PaymentSource("training_fee", "training_fee", "model_id", by_model=True),
    "VoucherRedeemed": PaymentSource("royalty", "royalty", "model_id", by_model=True),
    # ComputeMarket.submit_job pays the dataset's training fee; its source id is the job id.
    "JobSubmitted": PaymentSource("training_fee", "training_fee", "job_id", by_model=False),
}


@dataclass(frozen=True)
class _Announced:
    payer: str
    source: PaymentSource
    amount: int
    ref: int


def _model(session: Session, model_id: int) -> ModelRow:
    row = session.get(ModelRow, model_id)
    assert row is not None, f"event for unindexed model {model_id}"
    return row


def _channel(session: Session, channel_id: int) -> ChannelRow:
    row = session.get(ChannelRow, channel_id)
    assert row is not None, f"event for unindexed channel {channel_id}"
    return row


def _on_registered(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    session.add(ModelRow(
        model_id=a["model_id"], dataset_id=a["dataset_id"], owner=a["owner"], price=a["price"],
        royalty_bps=a["royalty_bps"], training_fee=a["training_fee"], registered_block=e.block_number,
        tx_hash="0x" + e.tx_hash, version_count=0, predictions=0, revenue=0, royalties=0,
    ))
    session.add(PriceRow(model_id=a["model_id"], price=a["price"], block=e.block_number, tx_hash="0x" + e.tx_hash))
    session.flush()


def _on_trained_on_job(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    model = _model(session, a["model_id"])
    model.training_fee = a["training_fee"]
    session.flush()
    for credit in session.scalars(select(JobIncomeRow).where(JobIncomeRow.job_id == a["job_id"])):
        _income_row(session, credit.dataset_id, credit.holder, model.model_id).training_fee += credit.training_fee


def _on_version(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    _model(session, a["model_id"]).version_count = a["version"]
    session.add(ModelVersionRow(
        model_id=a["model_id"], version=a["version"], spec_cid=loaders.cid_of_digest(a["spec_digest"]),
        checkpoint_cid=loaders.cid_of_digest(a["checkpoint_digest"]),
        report_cid=loaders.cid_of_digest(a["report_digest"]), claimed_score=a["claimed_score"],
        block=e.block_number, tx_hash="0x" + e.tx_hash,
    ))


def _on_price(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    _model(session, a["model_id"]).price = a["price"]
    session.add(PriceRow(model_id=a["model_id"], price=a["price"], block=e.block_number, tx_hash="0x" + e.tx_hash))


def _on_verified(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    row = session.get(ModelVersionRow, (a["model_id"], a["version"]))
    assert row is not None, f"score for unindexed version {a['model_id']}/{a['version']}"
    row.verified_score = a["score"]
    row.verification_cid = loaders.cid_of_digest(a["report_digest"])
    row.verifier = a["evaluator"]
    row.verified_block = e.block_number


def _on_opened(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    session.add(ChannelRow(channel_id=a["channel_id"], model_id=a["model_id"], user=a["user"], deposit=a["deposit"],
                           redeemed=0, state="open", closes_at=0, refund=0, opened_block=e.block_number))


def _on_topped_up(session: Session, e: Event, loaders: Loaders) -> None:
    _channel(session, e.args["channel_id"]).deposit = e.args["deposit"]


def _on_redeemed(session: Session, e: Event, loaders: Loaders) -> None:
    a = e.args
    channel = _channel(session, a["channel_id"])
    channel.redeemed = a["amount"]
    model = _model(session, a["model_id"])
    # Vouchers are priced off-chain; the price in effect now is the best the
    # chain tells of the price they were signed at (it differs only for
    # vouchers signed before a price change and redeemed after it).
    predictions = a["paid"] // model.price if model.price else 0
    model.predictions += predictions
    model.revenue += a["paid"]
    model.royalties += a["royalty"]
    session.add(RedemptionRow(
        channel_id=a["channel_id"], model_id=a["model_id"], dataset_id=model.dataset_id, amount=a["amount"],
        paid=a["paid"], royalty=a["royalty"], price=model.price, predictions=predictions, block=e.block_number,
        tx_hash="0x" + e.tx_hash,
    ))


def _on_closing(session: Session, e: Event, loaders: Loaders) -> None:
    channel = _channel(session, e.args["channel_id"])
    channel.state, channel.closes_at = "closing", e.args["closes_at"]


def _on_settled(session: Session, e: Event, loaders: Loaders) -> None:
    channel = _channel(session, e.args["channel_id"])
    channel.state, channel.refund = "settled", e.args["refund"]


_HANDLERS: dict[str, Callable[[Session, Event, Loaders], None]] = {
    "ModelRegistered": _on_registered,
    "ModelTrainedOnJob": _on_trained_on_job,
    "VersionPublished": _on_version,
    "PriceChanged": _on_price,
    "ScoreVerified": _on_verified,
    "ChannelOpened": _on_opened,
    "ChannelToppedUp": _on_topped_up,
    "VoucherRedeemed": _on_redeemed,
    "ChannelClosing": _on_closing,
    "ChannelSettled": _on_settled,
}


def _holder_parts(session: Session, dataset_id: int, amount: int) -> Iterator[tuple[str, int]]:
    """Each holder of the dataset with their pro rata part of a payment.

    ``amount × balance // supply``: the contract's revenue-per-share carries
    the remainders forward, so a holder's part here may be below what the
    contract pays them by less than one wei per payment.
    """
    holders = list(session.scalars(select(HolderRow).where(HolderRow.dataset_id == dataset_id,
                                                           HolderRow.balance > 0)))
    supply = sum(h.balance for h in holders)
    for h in holders if supply else ():
        yield h.holder, amount * h.balance // supply


def _income_row(session: Session, dataset_id: int, holder: str, model_id: int) -> ModelIncomeRow:
    row = session.get(ModelIncomeRow, (dataset_id, holder, model_id))
    if row is None:
        row = ModelIncomeRow(dataset_id=dataset_id, holder=holder, model_id=model_id, training_fee=0, royalties=0)
        session.add(row)
    return row


def _credit_holders(session: Session, dataset_id: int, model_id: int, amount: int, source: str) -> None:
    """Credit each holder of the dataset with their pro rata part of a model's payment."""
    for holder, part in _holder_parts(session, dataset_id, amount):
        row = _income_row(session, dataset_id, holder, model_id)
        if source == "training_fee":
            row.training_fee += part
        else:
            row.royalties += part


def _credit_job(session: Session, dataset_id: int, job_id: int, amount: int) -> None:
    """Credit each holder of the dataset with their pro rata part of a job's training fee."""
    for holder, part in _holder_parts(session, dataset_id, amount):
        session.add(JobIncomeRow(dataset_id=dataset_id, holder=holder, job_id=job_id, training_fee=part))


def apply_all(session: Session, events: Sequence[TaggedEvent], loaders: Loaders, data_market: str) -> int:
    """Apply DataMarket and ModelMarket events in chain order; returns how many were handled."""
    announced: dict[str, _Announced] = {}  # per transaction: the last payment a contract announced
    count = 0
    for address, e in events:
        if address.lower() != data_market.lower():
            handler = _HANDLERS.get(e.name)
            source = PAYMENT_SOURCES.get(e.name)
            if handler is None and source is None:
                continue
            if handler is not None:
                handler(session, e, loaders)
            if source is not None:
                announced[e.tx_hash] = _Announced(address.lower(), source, int(e.args[source.amount]),
                                                  int(e.args[source.ref]))
            count += 1
            continue
        note = announced.get(e.tx_hash) if e.name == "RevenueDeposited" else None
        if note is not None and (note.payer, note.amount) == (e.args["payer"].lower(), e.args["amount"]):
            del announced[e.tx_hash]
            session.flush()  # the holders' balances as of this deposit
            record_deposit(session, e, note.source.source, note.ref)
            if note.source.by_model:
                _credit_holders(session, e.args["dataset_id"], note.ref, note.amount, note.source.source)
            else:
                _credit_job(session, e.args["dataset_id"], note.ref, note.amount)
            count += 1
            continue
        count += apply_events(session, [e], loaders)
    return count
