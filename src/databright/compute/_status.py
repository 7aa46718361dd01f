"""Read-only views of a coordinator's database, as JSON-ready dicts (the status endpoints and CLI)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from databright.errors import NotFound
from databright.compute._schema import assignments, exposure, jobs, rounds, slashes, tasks, workers

__all__ = ["exposure_ledger", "job_status", "jobs_status", "workers_status"]


def jobs_status(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        ids = conn.execute(select(jobs.c.id).order_by(jobs.c.id)).scalars().all()
    return [job_status(engine, int(i)) for i in ids]


def job_status(engine: Engine, job_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        job = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
        if job is None:
            raise NotFound("job", job_id)
        per_round = conn.execute(
            select(tasks.c.round, func.count(), func.sum((tasks.c.status == "accepted").cast(tasks.c.idx.type)))
            .where(tasks.c.job_id == job_id).group_by(tasks.c.round).order_by(tasks.c.round)).all()
        checkpoints = dict(conn.execute(select(rounds.c.round, rounds.c.checkpoint_cid)
                                        .where(rounds.c.job_id == job_id)).all())
        slashed = conn.execute(select(func.count()).select_from(slashes).where(slashes.c.job_id == job_id))
    return {
        "job_id": job.id, "dataset_id": job.dataset_id, "status": job.status, "round": job.round,
        "rounds": job.rounds, "local_steps": job.local_steps, "redundancy": job.redundancy,
        "max_exposure_bps": job.max_exposure_bps, "cap_items": job.cap, "budget_wei": job.budget,
        "checkpoint": job.checkpoint_cid, "checkpoint_sha256": job.checkpoint_sha256, "report": job.report_cid,
        "score": job.score, "settle_tx": job.settle_tx, "slashes": int(slashed.scalar_one()),
        "round_detail": [{"round": int(r), "tasks": int(n), "accepted": int(a or 0),
                          "checkpoint": checkpoints.get(r)} for r, n, a in per_round],
    }


def workers_status(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(workers).order_by(workers.c.registered_at, workers.c.address)).all()
        counts = {(w, v): int(n) for w, v, n in conn.execute(
            select(assignments.c.worker, assignments.c.verdict, func.count())
            .group_by(assignments.c.worker, assignments.c.verdict)).all()}
        slashed = {str(w): int(n) for w, n in conn.execute(
            select(slashes.c.worker, func.count()).group_by(slashes.c.worker)).all()}
    return [{"address": w.address, "group": w.grp, "min_fee_wei": w.min_fee, "fingerprint": w.fingerprint_digest,
             "environment": json.loads(w.fingerprint), "tasks_accepted": counts.get((w.address, "agree"), 0),
             "earned_wei": str(counts.get((w.address, "agree"), 0) * int(w.min_fee)),
             "slashes": int(slashed.get(w.address, 0)), "banned": bool(w.banned), "last_seen": w.last_seen}
            for w in rows]


def exposure_ledger(engine: Engine, dataset_id: int) -> list[dict[str, Any]]:
    """Per worker: how many distinct items of the dataset it has been sent, and which."""
    with engine.connect() as conn:
        rows = conn.execute(select(exposure.c.worker, exposure.c.item_cid).where(exposure.c.dataset_id == dataset_id)
                            .order_by(exposure.c.worker, exposure.c.item_cid)).all()
        caps = conn.execute(select(jobs.c.cap).where(jobs.c.dataset_id == dataset_id)).scalars().all()
    ledger: dict[str, list[str]] = {}
    for worker, cid in rows:
        ledger.setdefault(worker, []).append(cid)
    cap = min((int(c) for c in caps), default=None)
    return [{"worker": w, "items": len(cids), "cap_items": cap, "item_cids": cids} for w, cids in ledger.items()]
