"""Request (``*Create``) and response (``*Public``) bodies of the REST API.

Amounts in wei and share counts are integers of any size; JSON carries them
exactly (clients in JavaScript should parse them as BigInt).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccountPublic",
    "ChainPublic",
    "ChannelPublic",
    "CommentCreate",
    "CommentPublic",
    "ContributorImpactPublic",
    "DatasetCreate",
    "DatasetPublic",
    "ErrorPublic",
    "HolderPublic",
    "HoldingPublic",
    "ItemPublic",
    "LocalSignInCreate",
    "MarketModelDetailPublic",
    "MarketModelPublic",
    "ModelImpactPublic",
    "ModelPublic",
    "ModelVersionPublic",
    "NoncePublic",
    "PricePublic",
    "ProposalPublic",
    "RedemptionPublic",
    "RevenuePublic",
    "RoyaltyPublic",
    "SessionPublic",
    "SiweSignInCreate",
    "TallyPublic",
    "TxHashCreate",
    "TxResultPublic",
    "VoteCreate",
    "VotePublic",
    "WalletTxPublic",
    "WithdrawalCreate",
    "WithdrawalPublic",
]


class DatasetCreate(BaseModel):
    """A new dataset, as the create form and the API take it (you receive its initial shares)."""

    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    kind: Literal["files", "table"] = "files"
    labels: str = Field(default="", max_length=2000, description="comma-separated label set; empty allows any")
    license: str = Field(default="CC-BY-4.0", max_length=100)
    contributor_fields: str = Field(default="", max_length=400, description=(
        "comma-separated details every contributor gives and signs with a proposal, e.g. 'affiliation, country'"))
    initial_shares: int = Field(default=1000, ge=1, le=10**30)
    quorum_percent: Decimal = Field(default=Decimal(20), gt=0, le=100)
    approval_percent: Decimal = Field(default=Decimal(50), gt=0, le=100)
    voting_hours: Decimal = Field(default=Decimal(1), gt=0, le=24 * 366)
    bond_eth: Decimal = Field(default=Decimal("0.01"), ge=0, le=10**9)
    base_reward_per_item: int = Field(default=10, ge=0, le=10**30)
    max_reward_per_proposal: int = Field(default=10_000, ge=1, le=10**30)


class ErrorPublic(BaseModel):
    error: str


class DatasetPublic(BaseModel):
    dataset_id: int
    name: str
    description: str
    kind: str
    labels: list[str]
    license: str
    creator: str
    items: int
    entries: int
    shareholders: int
    total_shares: int
    revenue_total_wei: int
    revenue_withdrawn_wei: int
    revenue_by_source: dict[str, int] = Field(
        default_factory=dict, description="wei paid in per source: training_fee, royalty, forfeited_bond, payment")
    open_proposals: int
    quorum_bps: int
    approval_bps: int
    voting_period_s: int
    proposal_bond_wei: int
    evaluation_required: bool
    evaluator: str
    metadata_cid: str


class HolderPublic(BaseModel):
    address: str
    shares: int
    fraction: float
    withdrawn_wei: int


class ItemPublic(BaseModel):
    cid: str
    label: str
    proposal_id: int
    position: int
    accepted: bool
    duplicate_of: int | None
    filename: str


class TallyPublic(BaseModel):
    yes: int
    no: int
    voters: int
    snapshot_supply: int
    quorum_needed: int
    participation: float
    approval: float
    approval_needed: float
    time_left_s: int
    outcome: str


class ProposalPublic(BaseModel):
    proposal_id: int
    dataset_id: int
    contributor: str
    items: int
    status: str
    bond_wei: int
    deadline: int
    manifest_cid: str
    root: str
    evaluated: bool
    report_cid: str | None
    shares_minted: int
    duplicates: int
    manifest_matches: bool | None = Field(
        default=None, description="whether the manifest matches the root and item count committed on-chain"
    )
    entry_index: int | None = Field(default=None, description="its registry entry (from 0), once accepted")
    tally: TallyPublic


class VoteCreate(BaseModel):
    support: bool


class VotePublic(BaseModel):
    voter: str
    support: bool
    weight: int
    tx_hash: str


class CommentCreate(BaseModel):
    body: str = Field(min_length=1, max_length=4000)
    # A browser wallet signs the message itself; local accounts leave these out.
    date: str | None = Field(default=None, max_length=40)
    signature: str | None = Field(default=None, max_length=140)


class CommentPublic(BaseModel):
    comment_id: int
    proposal_id: int
    author: str
    body: str
    message: str
    signature: str
    verified: bool
    created: float


class ModelPublic(BaseModel):
    dataset_id: int
    dataset: str
    evaluator: str
    kind: str
    spec: str
    score: float | None
    checkpoint_cid: str | None
    checkpoint_digest: str | None
    versions: int


class MarketModelPublic(BaseModel):
    """A model registered on the ModelMarket, with what it has served and paid (from the index)."""

    model_id: int
    dataset_id: int
    dataset: str
    owner: str
    price_wei: int
    royalty_bps: int
    training_fee_wei: int
    versions: int
    claimed_score_ppm: int = Field(description="the latest version's claimed validation accuracy, ppm")
    verified_score_ppm: int | None = Field(description="the best score the dataset's evaluator verified, ppm")
    predictions: int = Field(description="redeemed payments divided by the price in effect at each redemption")
    revenue_wei: int = Field(description="everything redeemed from the model's channels")
    royalties_wei: int = Field(description="the part of it paid to the dataset's shareholders")
    registered_block: int


class ModelVersionPublic(BaseModel):
    version: int
    spec_cid: str
    checkpoint_cid: str
    report_cid: str
    claimed_score_ppm: int
    verified_score_ppm: int | None
    verification_cid: str | None
    verifier: str | None
    block: int


class PricePublic(BaseModel):
    price_wei: int
    block: int


class RedemptionPublic(BaseModel):
    channel_id: int
    amount_wei: int
    paid_wei: int
    royalty_wei: int
    price_wei: int
    predictions: int
    block: int
    tx_hash: str


class RoyaltyPublic(BaseModel):
    """What one shareholder of the dataset was paid by the model, pro rata at each payment."""

    holder: str
    training_fee_wei: int
    royalties_wei: int


class MarketModelDetailPublic(MarketModelPublic):
    history: list[ModelVersionPublic]
    prices: list[PricePublic]
    redemptions: list[RedemptionPublic]
    royalties: list[RoyaltyPublic]


class ChannelPublic(BaseModel):
    channel_id: int
    model_id: int
    user: str
    state: Literal["open", "closing", "settled"]
    deposit_wei: int
    redeemed_wei: int
    refundable_wei: int = Field(description="deposit not yet redeemed; 0 once settled")
    refund_wei: int = Field(description="what settling returned")
    closes_at: int


class ModelImpactPublic(BaseModel):
    model_id: int
    owner: str
    claimed_score_ppm: int
    verified_score_ppm: int | None
    improvement_ppm: int | None = Field(description="over the best verified score of the models before it")
    training_fee_wei: int
    royalties_wei: int
    predictions: int


class RevenuePublic(BaseModel):
    """A dataset's revenue by source and the models trained on it."""

    dataset_id: int
    total_wei: int
    training_fee_wei: int
    royalty_wei: int
    forfeited_bond_wei: int
    payment_wei: int
    models: list[ModelImpactPublic]


class ContributorImpactPublic(BaseModel):
    dataset_id: int
    model_id: int
    contributed_items: int
    training_fee_wei: int
    royalties_wei: int
    paid_wei: int


class HoldingPublic(BaseModel):
    dataset_id: int
    dataset: str
    shares: int
    fraction: float
    withdrawn_wei: int
    withdrawable_wei: int


class AccountPublic(BaseModel):
    address: str
    holdings: list[HoldingPublic]
    proposals: list[ProposalPublic]
    refundable_wei: int = Field(0, description="bonds of accepted and expired proposals waiting to be claimed")
    models_paid: list[ContributorImpactPublic] = Field(
        default_factory=list, description="models trained on data this account contributed, and what they paid it")


class WithdrawalCreate(BaseModel):
    dataset_id: int = Field(ge=1, le=2**63 - 1)


class WithdrawalPublic(BaseModel):
    dataset_id: int
    amount_wei: int


class RefundPublic(BaseModel):
    amount_wei: int


class LocalSignInCreate(BaseModel):
    account: str = Field(min_length=1, max_length=100)
    password: str = Field(max_length=1000)


class SiweSignInCreate(BaseModel):
    message: str = Field(max_length=2000)
    signature: str = Field(max_length=140)


class NoncePublic(BaseModel):
    nonce: str
    message_template: str


class SessionPublic(BaseModel):
    address: str | None
    name: str | None
    mode: str | None
    csrf_token: str


class ChainPublic(BaseModel):
    """The chain a browser wallet must be on, and a JSON-RPC URL to add it to the wallet."""

    chain_id: int
    chain_id_hex: str
    rpc_url: str | None
    contract: str


class WalletTxPublic(BaseModel):
    """``eth_sendTransaction`` parameters (EIP-1193): quantities and data as 0x-hex strings."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: str = Field(alias="from")
    to: str
    data: str
    value: str
    chainId: str  # noqa: N815 - the wallet's spelling
    gas: str


class RevealCreate(BaseModel):
    """What a committed proposal reveals (``reveal_proposal``'s arguments, bytes as 0x-hex)."""

    dataset_id: int = Field(ge=1, le=2**63 - 1)
    root: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    manifest_digest: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    item_count: int = Field(ge=1, lt=2**32)
    salt: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class ProposalTxPublic(BaseModel):
    """A wallet proposes in two transactions: ``commit`` first; once it is mined,
    POST ``reveal`` to ``reveal_url`` for the second."""

    commit: WalletTxPublic
    reveal: RevealCreate
    reveal_url: str


class TxHashCreate(BaseModel):
    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class TxResultPublic(BaseModel):
    tx_hash: str
    block_number: int
    events: list[str]
    message: str
    proposal_id: int | None = None  # the proposal a ``propose`` created
    url: str | None = None  # the page that shows what the transaction made, if any
