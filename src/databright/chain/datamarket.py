"""Typed client of the DataMarket contract.

Wraps the contract's ABI in plain dataclasses so callers never handle raw
tuples; every write goes through ``Ledger.transact`` and returns what the
transaction created (a dataset id, a proposal id, an amount).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.types import TxReceipt

from databright.chain._contract_client import ZERO_ADDRESS, ContractClient, Event, _fields, _normalise
from databright.errors import NotFound

__all__ = [
    "Commitment",
    "DataMarket",
    "Dataset",
    "DatasetParams",
    "Entry",
    "Event",
    "Proposal",
    "ProposalStatus",
]


class ProposalStatus:
    OPEN = 0
    ACCEPTED = 1
    REJECTED = 2
    NAMES = {0: "open", 1: "accepted", 2: "rejected"}


@dataclass(frozen=True)
class DatasetParams:
    """What a dataset is created with (see DESIGN.md, Protocol rules)."""

    metadata_digest: bytes
    initial_shares: int
    quorum_bps: int = 2000
    approval_bps: int = 5000
    voting_period: int = 3600
    proposal_bond: int = 10**16
    base_reward_per_item: int = 10
    max_reward_per_proposal: int = 10_000
    evaluation_required: bool = False
    training_fee: int = 10**17
    evaluator: str = ZERO_ADDRESS
    # Against dilution by a majority: no early acceptance in the first ten
    # minutes of a proposal, and at most 10% of the supply minted per voting
    # period, however many proposals are accepted in it.
    min_accept_delay: int = 600
    max_mint_bps: int = 1000
    # The least prediction royalty a model trained on the dataset pays it.
    min_royalty_bps: int = 500


@dataclass(frozen=True)
class Dataset:
    dataset_id: int
    creator: str
    metadata_digest: bytes
    quorum_bps: int
    approval_bps: int
    voting_period: int
    proposal_bond: int
    base_reward_per_item: int
    max_reward_per_proposal: int
    evaluation_required: bool
    training_fee: int
    evaluator: str
    entry_count: int
    created_block: int
    min_accept_delay: int
    max_mint_bps: int
    min_royalty_bps: int
    next_evaluator: str
    next_evaluator_at: int


@dataclass(frozen=True)
class Proposal:
    proposal_id: int
    dataset_id: int
    contributor: str
    bond: int
    root: bytes
    manifest_digest: bytes
    item_count: int
    snapshot_block: int
    deadline: int
    yes_votes: int
    no_votes: int
    status: int
    evaluated: bool
    value: int
    eval_shares: int
    report_digest: bytes
    shares_minted: int
    evaluator: str
    evaluation_required: bool

    @property
    def status_name(self) -> str:
        return ProposalStatus.NAMES.get(self.status, str(self.status))


@dataclass(frozen=True)
class Entry:
    proposal_id: int
    contributor: str
    root: bytes
    manifest_digest: bytes
    item_count: int
    shares_minted: int
    block_number: int


@dataclass(frozen=True)
class Commitment:
    """What a proposal commits to before it is revealed (docs/protocol.md)."""

    sender: str
    dataset_id: int
    root: bytes
    manifest_digest: bytes
    item_count: int
    salt: bytes

    @classmethod
    def new(cls, sender: str, dataset_id: int, root: bytes, manifest_digest: bytes, item_count: int) -> Commitment:
        """A commitment with a fresh secret salt."""
        return cls(to_checksum_address(sender), dataset_id, root, manifest_digest, item_count, secrets.token_bytes(32))

    @property
    def digest(self) -> bytes:
        """keccak256(abi.encode(sender, dataset_id, root, manifest_digest, item_count, salt))."""
        encoded = abi_encode(
            ["address", "uint256", "bytes32", "bytes32", "uint256", "bytes32"],
            [self.sender, self.dataset_id, self.root, self.manifest_digest, self.item_count, self.salt],
        )
        return bytes(Web3.keccak(encoded))

    def reveal_args(self) -> tuple[int, bytes, bytes, int, bytes]:
        return (self.dataset_id, self.root, self.manifest_digest, self.item_count, self.salt)


class DataMarket(ContractClient):
    """One deployed DataMarket contract."""

    # -- reads ---------------------------------------------------------------

    def dataset_count(self) -> int:
        return int(self._read("dataset_count"))

    def proposal_count(self) -> int:
        return int(self._read("proposal_count"))

    def dataset(self, dataset_id: int) -> Dataset:
        if not 1 <= dataset_id <= self.dataset_count():
            raise NotFound("dataset", dataset_id, range(1, self.dataset_count() + 1))
        names = tuple(f for f in Dataset.__dataclass_fields__ if f != "dataset_id")
        raw = _fields(self._read("get_dataset", dataset_id), names)
        return Dataset(dataset_id=dataset_id, **{k: _normalise(v) for k, v in raw.items()})

    def proposal(self, proposal_id: int) -> Proposal:
        if not 1 <= proposal_id <= self.proposal_count():
            raise NotFound("proposal", proposal_id, range(1, self.proposal_count() + 1))
        names = tuple(f for f in Proposal.__dataclass_fields__ if f != "proposal_id")
        raw = _fields(self._read("get_proposal", proposal_id), names)
        return Proposal(proposal_id=proposal_id, **{k: _normalise(v) for k, v in raw.items()})

    def entry(self, dataset_id: int, index: int) -> Entry:
        raw = _fields(self._read("get_entry", dataset_id, index), tuple(Entry.__dataclass_fields__))
        return Entry(**{k: _normalise(v) for k, v in raw.items()})

    def has_voted(self, proposal_id: int, voter: str) -> bool:
        return bool(self._read("has_voted", proposal_id, to_checksum_address(voter)))

    def voting_power(self, proposal_id: int, voter: str) -> int:
        return int(self._read("voting_power", proposal_id, to_checksum_address(voter)))

    def snapshot_supply(self, proposal_id: int) -> int:
        return int(self._read("snapshot_supply", proposal_id))

    def balance_of(self, holder: str, dataset_id: int) -> int:
        return int(self._read("balanceOf", to_checksum_address(holder), dataset_id))

    def total_supply(self, dataset_id: int) -> int:
        return int(self._read("total_supply", dataset_id))

    def withdrawable(self, dataset_id: int, holder: str) -> int:
        return int(self._read("withdrawable", dataset_id, to_checksum_address(holder)))

    def withdrawn(self, dataset_id: int, holder: str) -> int:
        return int(self._read("withdrawn", dataset_id, to_checksum_address(holder)))

    def revenue_total(self, dataset_id: int) -> int:
        return int(self._read("revenue_total", dataset_id))

    def revenue_held(self, dataset_id: int) -> int:
        return int(self._read("revenue_held", dataset_id))

    def refundable(self, account: str) -> int:
        return int(self._read("refundable", to_checksum_address(account)))

    def evaluator(self, dataset_id: int) -> str:
        """The evaluator in effect now (new proposals are judged by it)."""
        return to_checksum_address(self._read("evaluator", dataset_id))

    def checkpoint_hint(self, proposal_id: int, voter: str) -> int:
        return int(self._read("checkpoint_hint", proposal_id, to_checksum_address(voter)))

    def verify_item(
        self, dataset_id: int, entry_index: int, item_digest: bytes, label_hash: bytes, proof: list[bytes]
    ) -> bool:
        return bool(self._read("verify_item", dataset_id, entry_index, item_digest, label_hash, proof))

    # -- writes --------------------------------------------------------------

    @staticmethod
    def create_dataset_args(params: DatasetParams) -> tuple[Any, ...]:
        """``create_dataset``'s arguments, in the contract's order (for the client and for wallets)."""
        return (params.metadata_digest, params.initial_shares, params.quorum_bps, params.approval_bps,
                params.voting_period, params.proposal_bond, params.base_reward_per_item,
                params.max_reward_per_proposal, params.evaluation_required, params.training_fee,
                to_checksum_address(params.evaluator), params.min_accept_delay, params.max_mint_bps,
                params.min_royalty_bps)

    def create_dataset(self, account: LocalAccount, params: DatasetParams) -> int:
        receipt = self._send(account, "create_dataset", *self.create_dataset_args(params))
        return self._created(receipt, "DatasetCreated", "dataset_id")

    def propose(
        self, account: LocalAccount, dataset_id: int, root: bytes, manifest_digest: bytes, item_count: int
    ) -> int:
        """Commit, then reveal once the commitment is mined: two transactions."""
        commitment = Commitment.new(account.address, dataset_id, root, manifest_digest, item_count)
        self.commit(account, commitment)
        return self.reveal(account, commitment)

    def commit(self, account: LocalAccount, commitment: Commitment) -> TxReceipt:
        return self._send(account, "commit_proposal", commitment.digest)

    def reveal(self, account: LocalAccount, commitment: Commitment) -> int:
        bond = self.dataset(commitment.dataset_id).proposal_bond
        receipt = self._send(account, "reveal_proposal", *commitment.reveal_args(), value=bond)
        return self._created(receipt, "ProposalCreated", "proposal_id")

    def vote_call(self, proposal_id: int, voter: str, support: bool) -> Any:
        """The unsent ``vote`` call, with the voter's checkpoint hint read from the chain."""
        return self.contract.functions.vote(proposal_id, support, self.checkpoint_hint(proposal_id, voter))

    def vote(self, account: LocalAccount, proposal_id: int, support: bool) -> TxReceipt:
        return self.ledger.transact(account, self.vote_call(proposal_id, account.address, support))

    def finalize(self, account: LocalAccount, proposal_id: int) -> TxReceipt:
        return self._send(account, "finalize", proposal_id)

    def post_evaluation(
        self, account: LocalAccount, proposal_id: int, value: int, shares: int, report_digest: bytes
    ) -> TxReceipt:
        return self._send(account, "post_evaluation", proposal_id, value, shares, report_digest)

    def set_evaluator(self, account: LocalAccount, dataset_id: int, evaluator: str) -> TxReceipt:
        return self._send(account, "set_evaluator", dataset_id, to_checksum_address(evaluator))

    def deposit(self, account: LocalAccount, dataset_id: int, amount: int) -> TxReceipt:
        return self._send(account, "deposit", dataset_id, value=amount)

    def withdraw(self, account: LocalAccount, dataset_id: int) -> int:
        receipt = self._send(account, "withdraw", dataset_id)
        return self._created(receipt, "RevenueWithdrawn", "amount")

    def withdraw_refund(self, account: LocalAccount) -> int:
        receipt = self._send(account, "withdraw_refund")
        return self._created(receipt, "RefundWithdrawn", "amount")

    def transfer(self, account: LocalAccount, to: str, dataset_id: int, amount: int) -> TxReceipt:
        return self._send(
            account, "safeTransferFrom", account.address, to_checksum_address(to), dataset_id, amount, b""
        )

    # -- events --------------------------------------------------------------

    def decode_receipt(self, receipt: TxReceipt) -> list[Event]:
        return self._receipt_events(receipt)
