"""Opening rounds, aggregating them and finishing a job: the coordinator's own compute.

Everything here runs inside the caller's database transaction, after the blobs
it names are already in the blob store, so a crash at any point leaves either
the old round or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from databright.compute._fedavg import fedavg
from databright.compute._planner import task_seed
from databright.compute._schema import assignments, commitments, job_items, jobs, rounds, slashes, tasks, workers
from databright.compute._split_jobs import split_report
from databright.ml import (
    ModelSpec,
    accuracy,
    build_model,
    encode_items,
    encode_labels,
    environment,
    load_checkpoint,
    save_checkpoint,
)
from databright.storage import BlobStore, Manifest, canonical_json

__all__ = ["advance", "open_round", "start"]

REPORT_KIND = "databright.compute.job"


def start(conn: Connection, store: BlobStore, job: Any) -> None:
    """Round 0 starts from a model initialised with the job's seed."""
    blob = save_checkpoint(build_model(ModelSpec.from_json(job.spec), job.seed).state_dict())
    open_round(conn, store, job, 0, blob)


def open_round(conn: Connection, store: BlobStore, job: Any, round_: int, checkpoint: bytes) -> None:
    cid = str(store.put(checkpoint))
    sha = hashlib.sha256(checkpoint).hexdigest()
    conn.execute(insert(rounds).values(job_id=job.id, round=round_, checkpoint_cid=cid, checkpoint_sha256=sha))
    conn.execute(update(jobs).where(jobs.c.id == job.id).values(round=round_))
    shards = conn.execute(select(func.max(job_items.c.shard)).where(job_items.c.job_id == job.id)).scalar_one()
    conn.execute(insert(tasks), [
        {"job_id": job.id, "round": round_, "idx": i, "seed": task_seed(job.id, round_, i, job.seed),
         "needed": job.redundancy, "status": "open"}
        for i in range(shards + 1)
    ])


def advance(conn: Connection, store: BlobStore, job_id: int) -> bool:
    """Aggregate the job's round if every task is accepted; True when the round moved on."""
    job = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
    if job.status != "running":
        return False
    done = conn.execute(
        select(tasks.c.idx, tasks.c.status, tasks.c.result_cid)
        .where(tasks.c.job_id == job_id, tasks.c.round == job.round).order_by(tasks.c.idx)
    ).all()
    if not done or any(t.status != "accepted" for t in done):
        return False
    sizes = _shard_sizes(conn, job_id)
    states = [load_checkpoint(store.get(t.result_cid)) for t in done]
    blob = save_checkpoint(fedavg(states, [int(sizes[t.idx]) for t in done]))
    if job.round + 1 < job.rounds:
        open_round(conn, store, job, job.round + 1, blob)
    else:
        _finish(conn, store, job, blob)
    return True


def _shard_sizes(conn: Connection, job_id: int) -> dict[int, int]:
    rows = conn.execute(select(job_items.c.shard, func.count()).where(job_items.c.job_id == job_id)
                        .group_by(job_items.c.shard)).all()
    return {int(shard): int(count) for shard, count in rows}


def _finish(conn: Connection, store: BlobStore, job: Any, checkpoint: bytes) -> None:
    spec = ModelSpec.from_json(job.spec)
    cid = str(store.put(checkpoint))
    score = _score(store, spec, checkpoint, job.validation) if job.validation else None
    report = canonical_json(_report(conn, job, cid, hashlib.sha256(checkpoint).hexdigest(), score))
    conn.execute(update(jobs).where(jobs.c.id == job.id).values(
        status="done", checkpoint_cid=cid, checkpoint_sha256=hashlib.sha256(checkpoint).hexdigest(),
        report_cid=str(store.put(report)), score=score))


def _verifications(conn: Connection, job_id: int) -> dict[int, dict[str, Any]]:
    """How each optimistically verified lease was checked: segments, the sample drawn, the verdict."""
    rows = conn.execute(select(commitments).join(assignments, assignments.c.id == commitments.c.assignment_id)
                        .join(tasks, tasks.c.id == assignments.c.task_id).where(tasks.c.job_id == job_id)).all()
    out = {}
    for row in rows:
        commitment = json.loads(row.commitment)
        out[row.assignment_id] = {
            "method": "optimistic", "segments": commitment["leaves"] - 1, "interval": commitment["interval"],
            "root": commitment["root"], "sampled": json.loads(row.samples or "[]"), "verdict": row.status,
            "reason": row.reason, "replayed_steps": row.replayed_steps, "bad_segment": row.bad_segment}
    return out


def _score(store: BlobStore, spec: ModelSpec, checkpoint: bytes, validation: str) -> float:
    manifest = Manifest.from_bytes(store.get(validation))
    x = encode_items(spec, [store.get(item.cid) for item in manifest])
    y = encode_labels(spec, [item.label for item in manifest])
    return accuracy(spec, load_checkpoint(checkpoint), x, y)


def _report(conn: Connection, job: Any, cid: str, sha: str, score: float | None) -> dict[str, Any]:
    round_rows = conn.execute(select(rounds).where(rounds.c.job_id == job.id).order_by(rounds.c.round)).all()
    task_rows = conn.execute(select(tasks).where(tasks.c.job_id == job.id).order_by(tasks.c.round, tasks.c.idx)).all()
    leases = conn.execute(
        select(assignments.c.id, assignments.c.task_id, assignments.c.worker, assignments.c.status,
               assignments.c.verdict, assignments.c.result_sha256)
        .join(tasks, tasks.c.id == assignments.c.task_id).where(tasks.c.job_id == job.id)
        .order_by(assignments.c.id)
    ).all()
    checked = _verifications(conn, job.id)
    by_task: dict[int, list[dict[str, Any]]] = {}
    for lease in leases:
        entry = {"worker": lease.worker, "status": lease.status, "verdict": lease.verdict,
                 "sha256": lease.result_sha256}
        if lease.id in checked:
            entry["verification"] = checked[lease.id]
        by_task.setdefault(lease.task_id, []).append(entry)
    sizes = _shard_sizes(conn, job.id)
    slashed = conn.execute(select(slashes).where(slashes.c.job_id == job.id).order_by(slashes.c.id)).all()
    used = sorted({lease.worker for lease in leases})
    fingerprints = dict(conn.execute(
        select(workers.c.address, workers.c.fingerprint_digest).where(workers.c.address.in_(used))).all())
    return {
        "kind": REPORT_KIND, "version": 1, "job_id": job.id, "dataset_id": job.dataset_id,
        "spec": json.loads(job.spec), "rounds": job.rounds, "local_steps": job.local_steps,
        "redundancy": job.redundancy, "max_exposure_bps": job.max_exposure_bps, "cap_items": job.cap,
        "seed": job.seed, "validation": job.validation, "score": score,
        "checkpoint": cid, "checkpoint_sha256": sha,
        "round_checkpoints": [{"round": r.round, "checkpoint": r.checkpoint_cid, "sha256": r.checkpoint_sha256}
                              for r in round_rows],
        "tasks": [{"round": t.round, "index": t.idx, "seed": t.seed, "items": int(sizes[t.idx]),
                   "result": t.result_cid, "sha256": t.result_sha256, "leases": by_task.get(t.id, [])}
                  for t in task_rows],
        "workers": [{"address": w, "fingerprint": fingerprints.get(w)} for w in used],
        "slashes": [{"worker": s.worker, "reason": s.reason, "evidence": s.evidence_cid} for s in slashed],
        "environment": environment(),
        **split_report(conn, job),
    }
