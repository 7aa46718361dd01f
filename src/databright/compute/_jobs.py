"""What a coordinator is asked to do (a job) and what it hands back (a settlement)."""

from __future__ import annotations

from dataclasses import dataclass, field

from databright.chain.computemarket import Payment  # the settlement pays exactly what the contract takes
from databright.compute._jobspec import JobSettings
from databright.errors import InputError
from databright.ml import ModelSpec

__all__ = ["JobConfig", "Payment", "Settlement", "Slash"]


@dataclass(frozen=True)
class JobConfig:
    """A job as ComputeMarket.submit_job records it, with its spec resolved."""

    job_id: int
    dataset_id: int
    spec: ModelSpec
    rounds: int
    local_steps: int
    redundancy: int = 3
    max_exposure_bps: int = 500
    budget: int = 0
    seed: int = 0
    #: How tasks are verified and the model split; None means what the redundancy alone says.
    settings: JobSettings | None = None

    def __post_init__(self) -> None:
        if self.redundancy not in (1, 3):
            raise InputError(f"redundancy is 1 or 3, got {self.redundancy}")
        if self.settings is None:
            object.__setattr__(self, "settings", JobSettings.for_redundancy(self.redundancy))
        else:
            self.settings.check_redundancy(self.redundancy)
        if self.rounds < 1 or self.local_steps < 1:
            raise InputError("a job needs at least one round of at least one local step")
        if self.budget < 0 or self.seed < 0 or self.job_id < 0:
            raise InputError("job id, budget and seed must be non-negative")


@dataclass(frozen=True)
class Slash:
    worker: str
    amount: int
    evidence_cid: str
    reason: str


@dataclass(frozen=True)
class Settlement:
    """The arguments of ComputeMarket.complete_job for one finished job."""

    job_id: int
    payments: tuple[Payment, ...]
    slashes: tuple[Slash, ...]
    checkpoint_cid: str
    checkpoint_sha256: str
    report_cid: str
    paid: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paid", sum(p.tasks * p.fee_per_task for p in self.payments))
