"""``databright train DATASET --on-market``: a ComputeMarket job from submission to a checked result.

The job is submitted with the budget in escrow and the dataset's training fee
paid to its shareholders in the same transaction. With ``--workers N`` this
process also runs a coordinator and N logical workers (:mod:`._compute_local`);
otherwise a coordinator elsewhere must take the job. Either way the result is
trusted only once the chain shows the job completed, and only if the
checkpoint's SHA-256 equals the digest ``complete_job`` recorded.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from databright.errors import ComputeError, InputError

if TYPE_CHECKING:
    from databright.compute._jobspec import JobSettings

__all__ = ["JobRequest", "MarketResult", "train_on_market"]

JOB_REPORT_KIND = "databright.compute.job"


@dataclass(frozen=True)
class JobRequest:
    dataset_id: int
    spec_json: str
    rounds: int
    local_steps: int
    redundancy: int
    max_exposure_bps: int
    budget: int
    deadline_s: int
    timeout_s: float
    #: Verification and splitting; None means what the redundancy alone says (a bare model spec).
    settings: JobSettings | None = None


@dataclass(frozen=True)
class MarketResult:
    job_id: int
    spec_cid: str  # the model spec alone, as a model registers it
    checkpoint_cid: str
    report_cid: str
    score: float
    paid: int
    refunded: int
    training_fee: int
    slashed: list[dict[str, Any]]
    #: A split job's pieces and which workers held them (the report's "split"), else None.
    split: dict[str, Any] | None = None


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _submit(ws: Any, request: JobRequest, signer: Any) -> tuple[int, str, int]:
    from databright.cli._common import require_funds
    from databright.ml import ModelSpec

    cm = ws.compute_market
    fee = cm.training_fee(request.dataset_id)
    require_funds(ws, signer.address, request.budget + fee, "the job's budget and the dataset's training fee")
    spec_cid = str(ws.store.put(request.spec_json.encode()))
    job_cid = spec_cid
    if request.settings is not None and not request.settings.is_default:
        job_cid = str(ws.store.put(request.settings.document(ModelSpec.from_json(request.spec_json))))
    now = int(ws.ledger.w3.eth.get_block("latest")["timestamp"])
    # The contract requires the deadline within the unbonding delay, so a slash can still reach a cheat.
    deadline = now + min(request.deadline_s, cm.unbonding_delay())
    job_id = cm.submit_job(signer, request.dataset_id, job_cid, rounds=request.rounds,
                           local_steps=request.local_steps, redundancy=request.redundancy, budget=request.budget,
                           deadline=deadline, max_exposure_bps=request.max_exposure_bps)
    return int(job_id), spec_cid, fee


def _progress(local: Any, job_id: int, last: str) -> str:
    """One stderr line whenever the job's round or waiting reason changes."""
    from sqlalchemy import select

    from databright.compute._schema import jobs

    with local.engine.connect() as conn:
        row = conn.execute(select(jobs.c.round, jobs.c.rounds, jobs.c.status).where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        line = f"job {job_id}: waiting for the coordinator to accept it"
    else:
        line = f"job {job_id}: round {row.round + 1}/{row.rounds} ({row.status})"
        reason = local.coordinator.waiting(job_id)
        if reason:
            line += f"; waiting: {reason}"
    if line != last:
        _say(line)
    return line


def _wait(ws: Any, job_id: int, local: Any, timeout_s: float) -> Any:
    from databright.chain.computemarket import JobStatus

    cm = ws.compute_market
    give_up = time.monotonic() + timeout_s
    last = ""
    while True:
        if local is not None:
            local.poll()
            last = _progress(local, job_id, last)
        job = cm.job(job_id)
        if job.status == JobStatus.COMPLETED:
            return job
        if job.status == JobStatus.EXPIRED:
            raise ComputeError(f"job {job_id} expired before a coordinator completed it; its budget was refunded")
        if local is None:
            line = f"job {job_id}: {job.status.name.lower()}"
            if line != last:
                _say(line)
                last = line
        if time.monotonic() > give_up:
            raise ComputeError(f"job {job_id} did not complete within {timeout_s:g} s (it stays on the market; "
                               f"'databright compute jobs' shows it)")
        time.sleep(0.2 if local is not None else 2.0)


def _checked_result(ws: Any, job: Any, job_id: int, dataset_id: int) -> dict[str, Any]:
    """The job report, with its checkpoint's digest checked against the one recorded on chain."""
    from databright.storage import load_report

    report = load_report(ws.store, job.report_cid, "a compute job report",
                         lambda r: r.get("kind") == JOB_REPORT_KIND)
    if int(report["job_id"]) != job_id or int(report["dataset_id"]) != dataset_id:
        raise ComputeError(f"report {job.report_cid} is not the report of job {job_id} on dataset {dataset_id}")
    checkpoint = ws.store.get(report["checkpoint"])
    if hashlib.sha256(checkpoint).digest() != bytes(job.checkpoint_digest):
        raise ComputeError(f"checkpoint {report['checkpoint']} does not match the digest job {job_id} recorded "
                           "on chain")
    if report.get("score") is None:
        raise ComputeError(f"job {job_id} has no validation score to register")
    return report


def train_on_market(ws: Any, request: JobRequest, workers: int | None, *, port: int = 0, worker_fee: int = 0,
                    submitter: Any = None, operator: Any = None, byzantine: int = 0) -> MarketResult:
    """Submit the job (from ``submitter``, default the home account) and wait for its checked result;
    with ``workers``, run them here under ``operator``'s coordinator key."""
    from databright.cli._compute_local import LocalCompute

    if request.redundancy not in (1, 3):
        raise InputError("--redundancy must be 1 or 3")
    if request.settings is not None:
        request.settings.check_redundancy(request.redundancy)
    if request.rounds < 1 or request.local_steps < 1:
        raise InputError("--rounds and --steps must be positive")
    if request.budget <= 0:
        raise InputError("--budget must be positive")
    ws.compute_market  # noqa: B018 - a home without ComputeMarket is refused before anything is sent
    if workers is None and ws.rpc_url is None:
        # This process holds the embedded chain: no coordinator elsewhere could ever take the job.
        raise InputError("no coordinator can reach this home's embedded chain while no node serves it: "
                         "start 'databright compute up' first, or pass --workers N")
    local = LocalCompute(ws, workers, port=port, min_fee=worker_fee, operator=operator,
                                 byzantine=byzantine).start() if workers is not None else None
    try:
        if local is not None:
            _say(f"coordinator on {local.url} with {len(local.addresses)} logical workers")
        job_id, spec_cid, fee = _submit(ws, request, submitter or ws.signer())
        _say(f"submitted job {job_id}: budget {request.budget} wei in escrow, training fee {fee} wei paid")
        job = _wait(ws, job_id, local, request.timeout_s)
    finally:
        if local is not None:
            local.stop()
    report = _checked_result(ws, job, job_id, request.dataset_id)
    return MarketResult(job_id, spec_cid, str(report["checkpoint"]), str(job.report_cid), float(report["score"]),
                        int(job.paid), int(job.refunded), fee, list(report.get("slashes", [])), report.get("split"))
