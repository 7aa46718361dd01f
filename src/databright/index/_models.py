"""Tables of the off-chain index.

The index mirrors DataMarket events into SQL so pages, the API and the CLI can
list and search without calling the chain. Column types stay portable: SQLite by
default, PostgreSQL in production. Amounts in wei and share counts can exceed
64 bits, so they are stored as decimal strings of up to 78 digits (Numeric).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "CommentRow",
    "CursorRow",
    "DatasetRow",
    "HolderRow",
    "ItemRow",
    "LabelCountRow",
    "ProposalRow",
    "RevenueRow",
    "VoteRow",
]


class _BigInt(TypeDecorator[int]):
    """An arbitrary-size integer stored as decimal text.

    SQLite's NUMERIC affinity silently turns integers above 2**63 into floats,
    and wei amounts routinely exceed that, so amounts travel as strings.
    """

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else str(int(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


Amount = _BigInt()

_STAKE_DIGITS = 78  # 2**256 has 78 decimal digits
STAKE_ZERO = "0" * _STAKE_DIGITS


class Base(DeclarativeBase):
    pass


class CursorRow(Base):
    """How far the index has read the chain, and which deployment it mirrors."""

    __tablename__ = "cursor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))
    last_block: Mapped[int] = mapped_column(BigInteger)
    # Chain id and address survive a chain reset and a deterministic redeploy.
    # The deployment transaction and the genesis block may differ after one;
    # on a reset embedded chain (fixed genesis, deterministic signatures) only
    # the blocks after the deployment do, hence the hash of the last applied
    # block. NULL (an index file from before these columns) means: rebuild.
    start_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    deploy_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    genesis_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    # The ModelMarket mirrored with it: its payments decide the source of a
    # dataset's revenue, so another (or a first) one means a rebuild.
    model_market: Mapped[str | None] = mapped_column(String(42), nullable=True)


class DatasetRow(Base):
    __tablename__ = "datasets"
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creator: Mapped[str] = mapped_column(String(42))
    metadata_cid: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="")
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    metadata_available: Mapped[bool] = mapped_column(Boolean, default=False)
    initial_shares: Mapped[int] = mapped_column(Amount)
    quorum_bps: Mapped[int] = mapped_column(Integer)
    approval_bps: Mapped[int] = mapped_column(Integer)
    voting_period: Mapped[int] = mapped_column(BigInteger)
    proposal_bond: Mapped[int] = mapped_column(Amount)
    base_reward_per_item: Mapped[int] = mapped_column(Amount)
    max_reward_per_proposal: Mapped[int] = mapped_column(Amount)
    evaluation_required: Mapped[bool] = mapped_column(Boolean)
    training_fee: Mapped[int] = mapped_column(Amount)
    # The evaluator in effect at the last change seen; a delayed change waits
    # in next_evaluator until next_evaluator_at (see ``evaluator_at``).
    evaluator: Mapped[str] = mapped_column(String(42))
    next_evaluator: Mapped[str | None] = mapped_column(String(42), nullable=True)
    next_evaluator_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_accept_delay: Mapped[int] = mapped_column(BigInteger, default=0)
    max_mint_bps: Mapped[int] = mapped_column(Integer, default=10_000)
    min_royalty_bps: Mapped[int] = mapped_column(Integer, default=0)
    created_block: Mapped[int] = mapped_column(BigInteger)
    total_supply: Mapped[int] = mapped_column(Amount, default=0)
    item_count: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_count: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_total: Mapped[int] = mapped_column(Amount, default=0)
    revenue_withdrawn: Mapped[int] = mapped_column(Amount, default=0)
    # Counters the pages show, kept by the indexer: counting a million rows per view is what they avoid.
    proposal_count: Mapped[int] = mapped_column(BigInteger, default=0)
    open_count: Mapped[int] = mapped_column(BigInteger, default=0)
    holder_count: Mapped[int] = mapped_column(BigInteger, default=0)

    def evaluator_at(self, timestamp: int) -> str:
        """The evaluator in effect at ``timestamp`` (new proposals get it)."""
        if self.next_evaluator is not None and self.next_evaluator_at is not None and self.next_evaluator_at <= timestamp:
            return self.next_evaluator
        return self.evaluator


class ProposalRow(Base):
    __tablename__ = "proposals"
    # One per list the pages read, each ending in the list's sort key (keyset pagination).
    __table_args__ = (
        Index("ix_proposals_dataset_id_page", "dataset_id", "proposal_id"),
        Index("ix_proposals_status_page", "status", "proposal_id"),
        Index("ix_proposals_dataset_status_page", "dataset_id", "status", "proposal_id"),
        Index("ix_proposals_entries", "dataset_id", "entry_index"),
    )
    proposal_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.dataset_id"))
    contributor: Mapped[str] = mapped_column(String(42), index=True)
    root: Mapped[str] = mapped_column(String(66))
    manifest_cid: Mapped[str] = mapped_column(String(80))
    manifest_available: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether the manifest's Merkle root and length are the ones declared on
    # chain; None while the manifest is unavailable.
    manifest_matches: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    item_count: Mapped[int] = mapped_column(BigInteger)
    bond: Mapped[int] = mapped_column(Amount)
    snapshot_block: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    created_block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    # The evaluator in effect at the reveal: only it may evaluate.
    evaluator: Mapped[str] = mapped_column(String(42), default="0x" + "00" * 20)
    yes_votes: Mapped[int] = mapped_column(Amount, default=0)
    no_votes: Mapped[int] = mapped_column(Amount, default=0)
    voter_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), default="open")
    # Rejected because a required evaluation never came: the bond was refunded
    # (a proposal voted down forfeits it).
    expired: Mapped[bool] = mapped_column(Boolean, default=False)
    evaluated: Mapped[bool] = mapped_column(Boolean, default=False)
    value: Mapped[int | None] = mapped_column(Amount, nullable=True)
    eval_shares: Mapped[int | None] = mapped_column(Amount, nullable=True)
    report_cid: Mapped[str | None] = mapped_column(String(80), nullable=True)
    shares_minted: Mapped[int] = mapped_column(Amount, default=0)
    entry_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finalized_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)


class VoteRow(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("proposal_id", "voter"), Index("ix_votes_page", "proposal_id", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.proposal_id"))
    voter: Mapped[str] = mapped_column(String(42), index=True)
    support: Mapped[bool] = mapped_column(Boolean)
    weight: Mapped[int] = mapped_column(Amount)
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class HolderRow(Base):
    __tablename__ = "holders"
    __table_args__ = (Index("ix_holders_page", "dataset_id", "stake", "holder"),)
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), primary_key=True)
    balance: Mapped[int] = mapped_column(Amount, default=0)
    withdrawn: Mapped[int] = mapped_column(Amount, default=0)
    # The balance as fixed-width digits: amounts are stored as text, and only
    # zero-padded text sorts as the numbers do (largest holders first).
    stake: Mapped[str] = mapped_column(String(80), default=STAKE_ZERO)

    def set_balance(self, balance: int) -> None:
        self.balance = balance
        self.stake = f"{balance:0{_STAKE_DIGITS}d}"


class ItemRow(Base):
    """One data point of a proposal (pending or accepted), from its manifest."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("proposal_id", "position"),  # also the index of a proposal's item pages
        Index("ix_items_dataset_cid", "dataset_id", "cid"),
        Index("ix_items_page", "dataset_id", "accepted", "proposal_id", "position"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.proposal_id"))
    position: Mapped[int] = mapped_column(Integer)
    cid: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LabelCountRow(Base):
    """How many accepted items of a dataset carry a label (the dataset page's chart)."""

    __tablename__ = "label_counts"
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class RevenueRow(Base):
    __tablename__ = "revenue"
    __table_args__ = (Index("ix_revenue_page", "dataset_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(Amount)
    kind: Mapped[str] = mapped_column(String(12))
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    # Where a deposit came from: training_fee, royalty, forfeited_bond or
    # payment (anyone's direct deposit); source_id is the paying model.
    source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class CommentRow(Base):
    """One signed message of a proposal's discussion thread (off-chain only).

    Unlike every other table, comments cannot be rebuilt from the chain, so they
    survive an index rebuild; hence no foreign key to ``proposals``.
    """

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_page", "proposal_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(BigInteger)
    author: Mapped[str] = mapped_column(String(42))
    body: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(140))
    created: Mapped[float] = mapped_column(Float)
