"""ComputeMarket's events as typed records, for the index and the dashboard.

Each record carries every value its event logs plus where it happened
(block, log index, transaction), so an index can be rebuilt from them alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from databright.chain._contract_client import Event, _normalise

__all__ = [
    "ComputeRecord", "CoordinatorRegistered", "CoordinatorRemoved", "EarningsWithdrawn", "JobAccepted",
    "JobCompleted", "JobExpired", "JobSubmitted", "MeasurementAllowed", "MeasurementRevoked", "MinFeeChanged",
    "ModelMarketSet", "RefundWithdrawn", "ServingSubmitted", "StakeAdded", "StakeWithdrawn", "UnbondingBegun", "WorkerPaid", "WorkerRegistered",
    "WorkerSlashed", "record_of",
]


@dataclass(frozen=True, kw_only=True)
class ComputeRecord:
    block_number: int
    log_index: int
    tx_hash: str


@dataclass(frozen=True, kw_only=True)
class WorkerRegistered(ComputeRecord):
    worker: str
    stake: int
    min_fee: int


@dataclass(frozen=True, kw_only=True)
class StakeAdded(ComputeRecord):
    worker: str
    amount: int
    stake: int


@dataclass(frozen=True, kw_only=True)
class MinFeeChanged(ComputeRecord):
    worker: str
    min_fee: int
    effective_at: int


@dataclass(frozen=True, kw_only=True)
class UnbondingBegun(ComputeRecord):
    worker: str
    stake: int
    unbonding_at: int


@dataclass(frozen=True, kw_only=True)
class StakeWithdrawn(ComputeRecord):
    worker: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class EarningsWithdrawn(ComputeRecord):
    worker: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class RefundWithdrawn(ComputeRecord):
    account: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class MeasurementAllowed(ComputeRecord):
    measurement: bytes


@dataclass(frozen=True, kw_only=True)
class MeasurementRevoked(ComputeRecord):
    measurement: bytes


@dataclass(frozen=True, kw_only=True)
class CoordinatorRegistered(ComputeRecord):
    coordinator: str
    measurement: bytes
    evidence_cid: str


@dataclass(frozen=True, kw_only=True)
class CoordinatorRemoved(ComputeRecord):
    coordinator: str


@dataclass(frozen=True, kw_only=True)
class JobSubmitted(ComputeRecord):
    job_id: int
    dataset_id: int
    submitter: str
    spec_cid: str
    rounds: int
    local_steps: int
    redundancy: int
    max_exposure_bps: int
    budget: int
    training_fee: int
    deadline: int


@dataclass(frozen=True, kw_only=True)
class JobAccepted(ComputeRecord):
    job_id: int
    coordinator: str


@dataclass(frozen=True, kw_only=True)
class WorkerPaid(ComputeRecord):
    job_id: int
    worker: str
    tasks: int
    fee_per_task: int
    amount: int


@dataclass(frozen=True, kw_only=True)
class WorkerSlashed(ComputeRecord):
    job_id: int
    worker: str
    amount: int
    evidence_cid: str


@dataclass(frozen=True, kw_only=True)
class JobCompleted(ComputeRecord):
    job_id: int
    coordinator: str
    paid: int
    refunded: int
    compensation: int
    checkpoint_digest: bytes
    report_cid: str


@dataclass(frozen=True, kw_only=True)
class ServingSubmitted(ComputeRecord):
    job_id: int
    model_id: int
    submitter: str
    version: int
    fee_per_prediction: int
    redundancy: int
    budget: int
    deadline: int


@dataclass(frozen=True, kw_only=True)
class ModelMarketSet(ComputeRecord):
    model_market: str


@dataclass(frozen=True, kw_only=True)
class JobExpired(ComputeRecord):
    job_id: int
    refunded: int


_KINDS: dict[str, type[ComputeRecord]] = {
    kind.__name__: kind
    for kind in (WorkerRegistered, StakeAdded, MinFeeChanged, UnbondingBegun, StakeWithdrawn, EarningsWithdrawn,
                 RefundWithdrawn, MeasurementAllowed, MeasurementRevoked, CoordinatorRegistered, CoordinatorRemoved,
                 JobSubmitted, JobAccepted, WorkerPaid, WorkerSlashed, JobCompleted, JobExpired, ServingSubmitted,
                 ModelMarketSet)
}
_WHERE = {f.name for f in fields(ComputeRecord)}


def record_of(event: Event) -> ComputeRecord | None:
    """The typed record of a decoded ComputeMarket event; None for events of the governance module."""
    kind = _KINDS.get(event.name)
    if kind is None:
        return None
    values: dict[str, Any] = {f.name: _normalise(event.args[f.name]) for f in fields(kind) if f.name not in _WHERE}
    return kind(block_number=event.block_number, log_index=event.log_index, tx_hash=event.tx_hash, **values)
