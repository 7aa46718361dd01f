"""Typed client of the ComputeMarket contract.

Like :mod:`databright.chain.modelmarket`: plain dataclasses for the contract's
structs, every write through ``Ledger.transact``, each write returning what it
created (a job id, an amount), and the contract's events decoded into typed
records (:mod:`databright.chain._compute_events`) for the index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.types import TxReceipt

from databright.chain._compute_events import ComputeRecord, record_of
from databright.chain._contract_client import DatasetPayerClient, _fields, _normalise
from databright.errors import NotFound

__all__ = [
    "MIN_STAKE",
    "UNBONDING_DELAY",
    "ComputeMarket",
    "Coordinator",
    "Job",
    "JobStatus",
    "Payment",
    "PendingFee",
    "Serving",
    "Slash",
    "Worker",
]

# What deploy() gives a new market. A week of unbonding is also the longest a
# job may run and the wait before a worker's fee raise takes effect; 0.01
# ether of stake is what a cheat loses at the least.
MIN_STAKE = 10**16
UNBONDING_DELAY = 7 * 86_400


class JobStatus(IntEnum):
    OPEN = 1
    ACCEPTED = 2
    COMPLETED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class Worker:
    address: str
    stake: int
    min_fee: int
    unbonding_at: int
    active: bool
    tasks_paid: int
    earned: int
    slashed: int

    @property
    def registered(self) -> bool:
        return self.active or self.unbonding_at != 0


@dataclass(frozen=True)
class PendingFee:
    fee: int
    effective_at: int


@dataclass(frozen=True)
class Coordinator:
    key: str
    measurement: bytes
    evidence_cid: str
    registered_at: int


@dataclass(frozen=True)
class Job:
    job_id: int
    submitter: str
    dataset_id: int
    spec_cid: str
    rounds: int
    local_steps: int
    redundancy: int
    max_exposure_bps: int
    budget: int
    training_fee: int
    deadline: int
    submitted_at: int
    status: JobStatus
    coordinator: str
    accepted_at: int
    paid: int
    refunded: int
    compensation: int
    checkpoint_digest: bytes
    report_cid: str

    @property
    def serving(self) -> bool:
        """A serving job (workers answer a model's predictions) rather than a training job."""
        return self.rounds == 0

    @property
    def held(self) -> int:
        """The budget still in escrow: all of it until the job completes or expires."""
        return self.budget if self.status in (JobStatus.OPEN, JobStatus.ACCEPTED) else 0


@dataclass(frozen=True)
class Serving:
    """A serving job's terms: the model, the version it serves and the fee per prediction."""

    job_id: int
    model_id: int
    version: int
    fee_per_prediction: int


@dataclass(frozen=True)
class Payment:
    """Pay ``worker`` ``tasks`` accepted tasks at ``fee_per_task`` wei each."""

    worker: str
    tasks: int
    fee_per_task: int


@dataclass(frozen=True)
class Slash:
    """Take ``amount`` wei of ``worker``'s stake, with the CID of the evidence."""

    worker: str
    amount: int
    evidence_cid: str


class ComputeMarket(DatasetPayerClient):
    """One deployed ComputeMarket contract."""

    def records(self, from_block: int, to_block: int) -> Iterator[ComputeRecord]:
        """The events of ``[from_block, to_block]`` as typed records, in order."""
        for event in self.events(from_block, to_block):
            record = record_of(event)
            if record is not None:
                yield record

    def decode_receipt(self, receipt: TxReceipt) -> list[ComputeRecord]:
        return [r for r in map(record_of, self._receipt_events(receipt)) if r is not None]

    # -- reads ---------------------------------------------------------------

    def owner(self) -> str:
        return to_checksum_address(self._read("owner"))

    def min_stake(self) -> int:
        return int(self._read("min_stake"))

    def unbonding_delay(self) -> int:
        return int(self._read("unbonding_delay"))

    def model_market_address(self) -> str | None:
        """The ModelMarket serving jobs serve models of; None until the owner sets it."""
        address = to_checksum_address(self._read("model_market"))
        return None if int(address, 16) == 0 else address

    def total_held(self) -> int:
        return int(self._read("total_held"))

    def earnings(self, worker: str) -> int:
        return int(self._read("earnings", to_checksum_address(worker)))

    def refunds(self, account: str) -> int:
        return int(self._read("refunds", to_checksum_address(account)))

    def worker(self, address: str) -> Worker:
        address = to_checksum_address(address)
        names = tuple(f for f in Worker.__dataclass_fields__ if f != "address")
        raw = _fields(self._read("workers", address), names)
        return Worker(address=address, **raw)

    def pending_fee(self, worker: str) -> PendingFee:
        raw = _fields(self._read("pending_fee", to_checksum_address(worker)), ("fee", "effective_at"))
        return PendingFee(**raw)

    def measurement_allowed(self, measurement: bytes) -> bool:
        return bool(self._read("allowed_measurements", measurement))

    def is_coordinator(self, key: str) -> bool:
        return bool(self._read("is_coordinator", to_checksum_address(key)))

    def coordinator(self, key: str) -> Coordinator:
        key = to_checksum_address(key)
        names = ("measurement", "evidence_cid", "registered_at")
        raw = _fields(self._read("coordinators", key), names)
        if raw["registered_at"] == 0:
            raise NotFound("coordinator", key, ())
        return Coordinator(key=key, **{k: _normalise(v) for k, v in raw.items()})

    def job_count(self) -> int:
        return int(self._read("job_count"))

    def job(self, job_id: int) -> Job:
        count = self.job_count()
        if not 1 <= job_id <= count:
            raise NotFound("job", job_id, range(1, count + 1))
        names = tuple(f for f in Job.__dataclass_fields__ if f != "job_id")
        raw = {k: _normalise(v) for k, v in _fields(self._read("get_job", job_id), names).items()}
        raw["status"] = JobStatus(raw["status"])
        return Job(job_id=job_id, **raw)

    def serving(self, job_id: int) -> Serving:
        """A serving job's terms; NotFound for an unknown job or a training job."""
        if not self.job(job_id).serving:
            raise NotFound("serving job", job_id, ())
        raw = _fields(self._read("get_serving", job_id), ("model_id", "version", "fee_per_prediction"))
        return Serving(job_id=job_id, **{k: int(v) for k, v in raw.items()})

    # -- workers -------------------------------------------------------------

    def register_worker(self, account: LocalAccount, min_fee: int, stake: int) -> TxReceipt:
        return self._send(account, "register_worker", min_fee, value=stake)

    def add_stake(self, account: LocalAccount, amount: int) -> int:
        """Add to the caller's stake; returns the new stake."""
        return self._created(self._send(account, "add_stake", value=amount), "StakeAdded", "stake")

    def set_min_fee(self, account: LocalAccount, min_fee: int) -> int:
        """Change the minimum fee; returns when it takes effect (a raise waits the unbonding delay)."""
        return self._created(self._send(account, "set_min_fee", min_fee), "MinFeeChanged", "effective_at")

    def begin_unbonding(self, account: LocalAccount) -> int:
        """Start leaving; returns when the stake can be withdrawn (unix time)."""
        return self._created(self._send(account, "begin_unbonding"), "UnbondingBegun", "unbonding_at")

    def withdraw_stake(self, account: LocalAccount) -> int:
        return self._created(self._send(account, "withdraw_stake"), "StakeWithdrawn", "amount")

    def withdraw_earnings(self, account: LocalAccount) -> int:
        return self._created(self._send(account, "withdraw_earnings"), "EarningsWithdrawn", "amount")

    def withdraw_refund(self, account: LocalAccount) -> int:
        return self._created(self._send(account, "withdraw_refund"), "RefundWithdrawn", "amount")

    # -- governance (the owner) ----------------------------------------------

    def allow_measurement(self, account: LocalAccount, measurement: bytes) -> TxReceipt:
        return self._send(account, "allow_measurement", measurement)

    def revoke_measurement(self, account: LocalAccount, measurement: bytes) -> TxReceipt:
        return self._send(account, "revoke_measurement", measurement)

    def register_coordinator(self, account: LocalAccount, key: str, measurement: bytes,
                             evidence_cid: str) -> TxReceipt:
        return self._send(account, "register_coordinator", to_checksum_address(key), measurement, evidence_cid)

    def remove_coordinator(self, account: LocalAccount, key: str) -> TxReceipt:
        return self._send(account, "remove_coordinator", to_checksum_address(key))

    def set_model_market(self, account: LocalAccount, model_market: str) -> TxReceipt:
        return self._send(account, "set_model_market", to_checksum_address(model_market))

    def transfer_ownership(self, account: LocalAccount, new_owner: str) -> TxReceipt:
        return self._send(account, "transfer_ownership", to_checksum_address(new_owner))

    def accept_ownership(self, account: LocalAccount) -> TxReceipt:
        return self._send(account, "accept_ownership")

    # -- jobs ----------------------------------------------------------------

    def submit_job(self, account: LocalAccount, dataset_id: int, spec_cid: str, *, rounds: int, local_steps: int,
                   redundancy: int, budget: int, deadline: int, max_exposure_bps: int = 500) -> int:
        """Submit a job, paying the budget into escrow and the dataset's training fee; returns the job id."""
        fee = self.training_fee(dataset_id)
        receipt = self._send(account, "submit_job", dataset_id, spec_cid, rounds, local_steps, redundancy,
                             max_exposure_bps, budget, deadline, value=budget + fee)
        return self._created(receipt, "JobSubmitted", "job_id")

    def submit_serving(self, account: LocalAccount, model_id: int, *, fee_per_prediction: int, redundancy: int,
                       budget: int, deadline: int) -> int:
        """As the model's owner, escrow ``budget`` for workers to serve it; returns the job id."""
        receipt = self._send(account, "submit_serving", model_id, fee_per_prediction, redundancy, budget, deadline,
                             value=budget)
        return self._created(receipt, "ServingSubmitted", "job_id")

    def accept_job(self, account: LocalAccount, job_id: int) -> TxReceipt:
        return self._send(account, "accept_job", job_id)

    def complete_job(self, account: LocalAccount, job_id: int, payments: Sequence[Payment],
                     slashes: Sequence[Slash], checkpoint_digest: bytes, report_cid: str) -> TxReceipt:
        paid = [(to_checksum_address(p.worker), p.tasks, p.fee_per_task) for p in payments]
        cut = [(to_checksum_address(s.worker), s.amount, s.evidence_cid) for s in slashes]
        return self._send(account, "complete_job", job_id, paid, cut, checkpoint_digest, report_cid)

    def expire_job(self, account: LocalAccount, job_id: int) -> int:
        """Expire a job past its deadline; returns the refund credited to its submitter."""
        return self._created(self._send(account, "expire_job", job_id), "JobExpired", "refunded")
