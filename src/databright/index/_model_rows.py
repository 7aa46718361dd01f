"""Tables of the index that mirror ModelMarket events.

Models and their immutable version history (claimed and verified scores with
their report CIDs), price changes, payment channels, redemptions and what each
holder of a dataset was paid by each model. They share ``Base`` with the
DataMarket tables, so a rebuild clears and refills them together.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from databright.index._models import Amount, Base

__all__ = ["ChannelRow", "JobIncomeRow", "ModelIncomeRow", "ModelRow", "ModelVersionRow", "PriceRow", "RedemptionRow"]


class ModelRow(Base):
    """A registered model with running totals of what it has served and paid."""

    __tablename__ = "models"
    model_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, index=True)
    owner: Mapped[str] = mapped_column(String(42), index=True)
    price: Mapped[int] = mapped_column(Amount)
    royalty_bps: Mapped[int] = mapped_column(Integer)
    training_fee: Mapped[int] = mapped_column(Amount)
    registered_block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    predictions: Mapped[int] = mapped_column(Amount, default=0)
    # Everything redeemed from its channels: royalties to the dataset plus the owner's part.
    revenue: Mapped[int] = mapped_column(Amount, default=0)
    royalties: Mapped[int] = mapped_column(Amount, default=0)


class ModelVersionRow(Base):
    """One published version: never changed except by its one verified score."""

    __tablename__ = "model_versions"
    model_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec_cid: Mapped[str] = mapped_column(String(80))
    checkpoint_cid: Mapped[str] = mapped_column(String(80))
    report_cid: Mapped[str] = mapped_column(String(80))
    claimed_score: Mapped[int] = mapped_column(BigInteger)
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    verified_score: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    verification_cid: Mapped[str | None] = mapped_column(String(80), nullable=True)
    verifier: Mapped[str | None] = mapped_column(String(42), nullable=True)
    verified_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PriceRow(Base):
    """A model's price from ``block`` on (the registration's price first)."""

    __tablename__ = "model_prices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, index=True)
    price: Mapped[int] = mapped_column(Amount)
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class ChannelRow(Base):
    __tablename__ = "channels"
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(BigInteger, index=True)
    user: Mapped[str] = mapped_column(String(42), index=True)
    deposit: Mapped[int] = mapped_column(Amount)
    redeemed: Mapped[int] = mapped_column(Amount, default=0)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open, closing, settled
    closes_at: Mapped[int] = mapped_column(BigInteger, default=0)
    refund: Mapped[int] = mapped_column(Amount, default=0)
    opened_block: Mapped[int] = mapped_column(BigInteger)


class RedemptionRow(Base):
    """One redeemed voucher: what it paid, the royalty, and the predictions it bought."""

    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, index=True)
    model_id: Mapped[int] = mapped_column(BigInteger, index=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(Amount)
    paid: Mapped[int] = mapped_column(Amount)
    royalty: Mapped[int] = mapped_column(Amount)
    # The price in effect at the redemption; predictions = paid // price.
    price: Mapped[int] = mapped_column(Amount)
    predictions: Mapped[int] = mapped_column(Amount)
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class ModelIncomeRow(Base):
    """What one holder of a dataset has been paid by one model (training fee and royalties).

    Credited when each payment is applied, pro rata to the holder's shares at
    that moment (the index applies events in chain order, so its balances are
    the balances the contract divided by).
    """

    __tablename__ = "model_income"
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), primary_key=True)
    model_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    training_fee: Mapped[int] = mapped_column(Amount, default=0)
    royalties: Mapped[int] = mapped_column(Amount, default=0)


class JobIncomeRow(Base):
    """What one holder of a dataset was paid by one ComputeMarket job's training fee.

    Credited pro rata at the job's submission, as ``ModelIncomeRow`` is; the
    model registered from the job (``ModelTrainedOnJob``) adds these credits
    to its own, since the job paid its training fee.
    """

    __tablename__ = "job_income"
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), primary_key=True)
    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    training_fee: Mapped[int] = mapped_column(Amount, default=0)
