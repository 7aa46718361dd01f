"""Response bodies of the compute API (``/api/v1/compute/jobs``): the chain's facts, the job
document's settings and, where the dashboard follows a coordinator, what it says of the job."""

from __future__ import annotations

from pydantic import BaseModel, Field

from databright.web._compute_views import JobDocument, JobView
from databright.web._coordinator_status import CoordinatorJob, CoordinatorReply, ExposureEntry

__all__ = ["ComputeJobPublic", "CoordinatorViewPublic", "JobDocumentPublic",
           "JobSlashPublic", "job_public"]


class JobSlashPublic(BaseModel):
    worker: str
    amount_wei: int
    evidence_cid: str


class JobDocumentPublic(BaseModel):
    """From the job document at the spec CID; ``problem`` says why it could not be read (then the rest is empty)."""

    verification: str | None = Field(description="TMR, optimistic or one worker")
    split: int = Field(description="pieces the model is cut into across workers; 1: not split")
    snapshot_every: int = Field(description="optimistic: steps per committed segment; 0: the coordinator's default")
    samples: int = Field(description="optimistic: segments re-executed per task; 0: the coordinator's default")
    model: str | None
    problem: str | None


class CoordinatorViewPublic(BaseModel):
    """The coordinator's view of the job; ``error`` when the dashboard names no coordinator or cannot reach it."""

    named: bool = Field(description="whether this dashboard follows a coordinator (serve --coordinator)")
    error: str | None
    known: bool = Field(description="whether the coordinator has the job (it may be another coordinator's)")
    rounds_done: int | None
    job: CoordinatorJob | None
    exposure: list[ExposureEntry] | None = Field(
        None, description="the job's dataset: distinct items each worker has been sent, against the cap")


class ComputeJobPublic(BaseModel):
    job_id: int
    dataset_id: int
    submitter: str
    status: str = Field(description="waiting, running, completed or expired (on-chain)")
    coordinator: str | None
    spec_cid: str
    rounds: int
    local_steps: int
    redundancy: int
    max_exposure_bps: int
    budget_wei: int
    training_fee_wei: int = Field(description="paid to the dataset's shareholders when the job was submitted")
    deadline: int = Field(description="chain time by which the coordinator must complete it, or it expires")
    paid_wei: int
    refunded_wei: int
    workers_paid: int
    report_cid: str | None
    checkpoint_digest: str | None
    slashes: list[JobSlashPublic]
    document: JobDocumentPublic
    progress: CoordinatorViewPublic


def _coordinator_view(reply: CoordinatorReply, job_id: int, with_exposure: bool) -> CoordinatorViewPublic:
    job = reply.jobs.get(job_id)
    error = reply.error or (None if reply.named else "this dashboard follows no coordinator")
    return CoordinatorViewPublic(named=reply.named, error=error, known=job is not None,
                                 rounds_done=job.rounds_done if job else None, job=job,
                                 exposure=reply.exposure if with_exposure else None)


def job_public(job: JobView, document: JobDocument, reply: CoordinatorReply,
               detail: bool = False) -> ComputeJobPublic:
    return ComputeJobPublic(
        job_id=job.job_id, dataset_id=job.dataset_id, submitter=job.submitter, status=job.status,
        coordinator=job.coordinator, spec_cid=job.spec_cid, rounds=job.rounds, local_steps=job.local_steps,
        redundancy=job.redundancy, max_exposure_bps=job.max_exposure_bps, budget_wei=job.budget,
        training_fee_wei=job.training_fee, deadline=job.deadline,
        paid_wei=job.paid, refunded_wei=job.refunded, workers_paid=job.workers, report_cid=job.report_cid,
        checkpoint_digest=job.checkpoint_digest,
        slashes=[JobSlashPublic(worker=w, amount_wei=a, evidence_cid=e) for w, a, e in job.slashes],
        document=JobDocumentPublic.model_validate(document, from_attributes=True), progress=_coordinator_view(reply, job.job_id, detail))
