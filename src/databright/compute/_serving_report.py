"""A serving job's books: its settlement (with the report it cites) and its status per worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.engine import Engine

from databright.compute._jobs import Payment, Settlement, Slash
from databright.compute._serving_schema import serving_answers, serving_jobs, serving_requests, serving_slashes
from databright.errors import NotFound
from databright.storage import BlobStore, canonical_json

__all__ = ["job_row", "serving_settlement", "serving_status"]


def job_row(conn: Connection, job_id: int) -> Any:
    """A serving job's row; NotFound if the coordinator does not serve it."""
    row = conn.execute(select(serving_jobs).where(serving_jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise NotFound("serving job", job_id)
    return row


def serving_settlement(engine: Engine, store: BlobStore, slash_wei: int, job_id: int) -> Settlement:
    """What complete_job pays (the fee per agreed prediction) and slashes; writes the job's report."""
    with engine.begin() as conn:
        job = job_row(conn, job_id)
        paid = conn.execute(
            select(serving_answers.c.worker, func.sum(serving_requests.c.item_count))
            .join(serving_requests, serving_requests.c.id == serving_answers.c.request_id)
            .where(serving_requests.c.job_id == job_id, serving_answers.c.verdict == "agree")
            .group_by(serving_answers.c.worker).order_by(serving_answers.c.worker)).all()
        cut = conn.execute(select(serving_slashes).where(serving_slashes.c.job_id == job_id)
                           .order_by(serving_slashes.c.id)).all()
        counts = conn.execute(select(func.count(), func.coalesce(func.sum(serving_requests.c.item_count), 0))
                              .where(serving_requests.c.job_id == job_id,
                                     serving_requests.c.status == "answered")).one()
        by_coordinator = conn.execute(select(func.count()).where(
            serving_requests.c.job_id == job_id, serving_requests.c.answered_by == "coordinator")).scalar_one()
        report = {"kind": "databright.compute.serving", "job_id": job_id, "model_id": job.model_id,
                  "version": job.version, "checkpoint": job.checkpoint_cid, "redundancy": job.redundancy,
                  "fee_per_prediction": job.fee, "requests": int(counts[0]), "predictions": int(counts[1]),
                  "answered_by_coordinator": int(by_coordinator),
                  "paid": {w: int(n) for w, n in paid},
                  "slashed": [{"worker": s.worker, "evidence": s.evidence_cid} for s in cut]}
        report_cid = str(store.put(canonical_json(report)))
        conn.execute(update(serving_jobs).where(serving_jobs.c.id == job_id).values(report_cid=report_cid))
    return Settlement(job_id, tuple(Payment(w, int(n), int(job.fee)) for w, n in paid),
                      tuple(Slash(s.worker, slash_wei, s.evidence_cid, s.reason) for s in cut),
                      job.checkpoint_cid, job.checkpoint_sha256, report_cid)


def serving_status(engine: Engine, job_id: int) -> dict[str, Any]:
    """A serving job's state and, per worker, predictions answered in agreement and answers found odd."""
    with engine.connect() as conn:
        job = job_row(conn, job_id)
        per = conn.execute(
            select(serving_answers.c.worker, serving_answers.c.verdict, func.count(),
                   func.sum(serving_requests.c.item_count))
            .join(serving_requests, serving_requests.c.id == serving_answers.c.request_id)
            .where(serving_requests.c.job_id == job_id, serving_answers.c.verdict.is_not(None))
            .group_by(serving_answers.c.worker, serving_answers.c.verdict)).all()
        requests = conn.execute(select(serving_requests.c.status, func.count())
                                .where(serving_requests.c.job_id == job_id)
                                .group_by(serving_requests.c.status)).all()
    out: dict[str, dict[str, int]] = {}
    for worker, verdict, answers, items in per:
        entry = out.setdefault(worker, {"agreed": 0, "odd": 0})
        entry["agreed" if verdict == "agree" else "odd"] += int(items if verdict == "agree" else answers)
    return {"job_id": job.id, "model_id": job.model_id, "version": job.version, "status": job.status,
            "redundancy": job.redundancy, "fee_per_prediction": int(job.fee), "budget": int(job.budget),
            "requests": {s: int(n) for s, n in requests}, "workers": out, "settle_tx": job.settle_tx}
