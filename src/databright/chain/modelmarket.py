"""Typed client of the ModelMarket contract.

Like :mod:`databright.chain.datamarket`: plain dataclasses for the contract's
structs, every write through ``Ledger.transact``, and each write returns what
it created (a model id, a channel id, a refund).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.types import TxReceipt

from databright.chain._contract_client import ZERO_ADDRESS, DatasetPayerClient, Event, _fields, _normalise
from databright.errors import NotFound, TransactionError

__all__ = ["CHALLENGE_PERIOD", "Channel", "Model", "ModelMarket", "ModelVersion", "Verification"]

# How long a closing channel stays redeemable: long enough for an owner's
# server that was down for a while to redeem its last voucher.
CHALLENGE_PERIOD = 86_400

@dataclass(frozen=True)
class Model:
    model_id: int
    owner: str
    dataset_id: int
    royalty_bps: int
    price: int
    version_count: int


@dataclass(frozen=True)
class ModelVersion:
    spec_digest: bytes
    checkpoint_digest: bytes
    report_digest: bytes
    claimed_score: int
    block_number: int


@dataclass(frozen=True)
class Verification:
    score: int
    report_digest: bytes
    evaluator: str
    block_number: int

    @property
    def verified(self) -> bool:
        return self.block_number != 0


@dataclass(frozen=True)
class Channel:
    channel_id: int
    user: str
    model_id: int
    deposit: int
    redeemed: int
    closes_at: int
    settled: bool

    @property
    def remaining(self) -> int:
        """What the channel can still pay (or refund)."""
        return self.deposit - self.redeemed

    @property
    def state(self) -> str:
        if self.settled:
            return "settled"
        return "closing" if self.closes_at else "open"


class ModelMarket(DatasetPayerClient):
    """One deployed ModelMarket contract."""

    def decode_receipt(self, receipt: TxReceipt) -> list[Event]:
        return self._receipt_events(receipt)

    # -- reads ---------------------------------------------------------------

    def model_count(self) -> int:
        return int(self._read("model_count"))

    def channel_count(self) -> int:
        return int(self._read("channel_count"))

    def challenge_period(self) -> int:
        return int(self._read("challenge_period"))

    def deployer(self) -> str:
        """Who may link the ComputeMarket (once)."""
        return to_checksum_address(self._read("deployer"))

    def compute_market_address(self) -> str | None:
        """The ComputeMarket whose completed jobs register models without a second training fee.

        None while none is linked, and for a ModelMarket deployed before
        models could be registered from jobs (it has no such function).
        """
        try:
            address = to_checksum_address(self._read("compute_market"))
        except TransactionError:
            return None
        return None if address == ZERO_ADDRESS else address

    def job_model(self, job_id: int) -> int:
        """The model registered from ComputeMarket job ``job_id`` (0 while none)."""
        return int(self._read("job_model", job_id))

    def model(self, model_id: int) -> Model:
        count = self.model_count()
        if not 1 <= model_id <= count:
            raise NotFound("model", model_id, range(1, count + 1))
        names = tuple(f for f in Model.__dataclass_fields__ if f != "model_id")
        raw = _fields(self._read("get_model", model_id), names)
        return Model(model_id=model_id, **{k: _normalise(v) for k, v in raw.items()})

    def version(self, model_id: int, version: int) -> ModelVersion:
        model = self.model(model_id)
        if not 1 <= version <= model.version_count:
            raise NotFound(f"version of model {model_id}", version, range(1, model.version_count + 1))
        raw = _fields(self._read("get_version", model_id, version), tuple(ModelVersion.__dataclass_fields__))
        return ModelVersion(**{k: _normalise(v) for k, v in raw.items()})

    def verification(self, model_id: int, version: int) -> Verification:
        self.version(model_id, version)
        raw = _fields(self._read("get_verification", model_id, version), tuple(Verification.__dataclass_fields__))
        return Verification(**{k: _normalise(v) for k, v in raw.items()})

    def channel(self, channel_id: int) -> Channel:
        count = self.channel_count()
        if not 1 <= channel_id <= count:
            raise NotFound("channel", channel_id, range(1, count + 1))
        names = tuple(f for f in Channel.__dataclass_fields__ if f != "channel_id")
        raw = _fields(self._read("get_channel", channel_id), names)
        return Channel(channel_id=channel_id, **{k: _normalise(v) for k, v in raw.items()})

    # -- writes --------------------------------------------------------------

    def register(
        self,
        account: LocalAccount,
        dataset_id: int,
        spec_digest: bytes,
        checkpoint_digest: bytes,
        report_digest: bytes,
        claimed_score: int,
        price: int,
        royalty_bps: int,
    ) -> int:
        """Register a model, paying the dataset's training fee; returns the model id."""
        fee = self.training_fee(dataset_id)
        receipt = self._send(account, "register", dataset_id, spec_digest, checkpoint_digest, report_digest,
                             claimed_score, price, royalty_bps, value=fee)
        return self._created(receipt, "ModelRegistered", "model_id")

    def register_from_job(self, account: LocalAccount, job_id: int, dataset_id: int, spec_digest: bytes,
                          checkpoint_digest: bytes, report_digest: bytes, claimed_score: int, price: int,
                          royalty_bps: int) -> int:
        """Register the model a completed ComputeMarket job trained, paying nothing: the job paid the fee."""
        receipt = self._send(account, "register_from_job", job_id, dataset_id, spec_digest, checkpoint_digest,
                             report_digest, claimed_score, price, royalty_bps)
        return self._created(receipt, "ModelRegistered", "model_id")

    def link_compute_market(self, account: LocalAccount, compute_market: str) -> TxReceipt:
        return self._send(account, "link_compute_market", to_checksum_address(compute_market))

    def publish_version(self, account: LocalAccount, model_id: int, spec_digest: bytes,
                        checkpoint_digest: bytes, report_digest: bytes, claimed_score: int) -> int:
        receipt = self._send(account, "publish_version", model_id, spec_digest, checkpoint_digest, report_digest,
                             claimed_score)
        return self._created(receipt, "VersionPublished", "version")

    def set_price(self, account: LocalAccount, model_id: int, price: int) -> TxReceipt:
        return self._send(account, "set_price", model_id, price)

    def post_verified_score(self, account: LocalAccount, model_id: int, version: int, score: int,
                            report_digest: bytes) -> TxReceipt:
        return self._send(account, "post_verified_score", model_id, version, score, report_digest)

    def open_channel(self, account: LocalAccount, model_id: int, deposit: int) -> int:
        receipt = self._send(account, "open_channel", model_id, value=deposit)
        return self._created(receipt, "ChannelOpened", "channel_id")

    def top_up(self, account: LocalAccount, channel_id: int, amount: int) -> TxReceipt:
        return self._send(account, "top_up", channel_id, value=amount)

    def redeem(self, account: LocalAccount, channel_id: int, amount: int, signature: bytes) -> TxReceipt:
        return self._send(account, "redeem", channel_id, amount, signature)

    def close(self, account: LocalAccount, channel_id: int) -> int:
        """Start closing a channel; returns when its challenge period ends (unix time)."""
        receipt = self._send(account, "close", channel_id)
        return self._created(receipt, "ChannelClosing", "closes_at")

    def settle(self, account: LocalAccount, channel_id: int) -> int:
        """Refund what a closed channel never paid; returns the refund in wei."""
        receipt = self._send(account, "settle", channel_id)
        return self._created(receipt, "ChannelSettled", "refund")

    def channels_of(self, user: str, from_block: int = 0) -> Iterator[Channel]:
        """The channels ``user`` opened, read from ChannelOpened events."""
        user = to_checksum_address(user)
        head = self.ledger.block_number()
        for event in self.events(from_block, head):
            if event.name == "ChannelOpened" and event.args["user"] == user:
                yield self.channel(int(event.args["channel_id"]))

