"""The coordinator: workers, leases, results and settlements over one SQL database.

The coordinator is the trusted party of the compute market. It hands tasks to
untrusted workers under leases (an expiry renewed by heartbeats), lets a worker
fetch only the blobs its live leases name, records every item a worker has been
entitled to fetch in the exposure ledger before the lease is granted, compares
results by digest (:mod:`._redundancy`) and aggregates each round itself
(:mod:`._rounds`). Claims are serialised per task row: ``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so several coordinators sharing one database never
lease one replica slot twice, and a whole-database write lock on SQLite.
A split job's tasks run as pipelines of stage leases (:mod:`._split_jobs`);
the coordinator hands them over at claim, blob fetch, result and expiry.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from databright.compute._jobs import JobConfig, Payment, Settlement, Slash
from databright.compute._optimistic import Optimistic, commit_every
from databright.compute._planner import exposure_cap, partition, waiting_reason
from databright.compute._redundancy import MAX_RERUNS, Verdict, decide
from databright.compute._requests import RequestDomain, SignedRequest
from databright.compute._rounds import advance, start
from databright.compute._schema import (
    assignments,
    exposure,
    job_items,
    jobs,
    nonces,
    rounds,
    slashes,
    tasks,
    workers,
)
from databright.compute._split_jobs import SplitJobs, split_of, split_waiting
from databright.compute._splitting import cut_spec
from databright.compute._stage_worker import StageTask
from databright.compute._task import Task
from databright.errors import ComputeError, InputError, NotFound, RequestError
from databright.ml import ModelSpec, load_checkpoint
from databright.storage import BlobStore, canonical_json

__all__ = ["Coordinator", "Lease"]

#: Claims and heartbeats sweep expired leases (and requests purge spent nonces) at most this often,
#: in seconds of the coordinator's clock: a sweep is a write transaction of its own, and a lease
#: past its time is refused a heartbeat or a result whether or not the sweep has run yet.
SWEEP_S = 1.0


@dataclass(frozen=True)
class Lease:
    id: int
    task: Task | StageTask
    expires_at: float
    #: Steps per committed segment when the task is optimistically verified, else 0.
    commit_every: int = 0


def fingerprint_digest(fingerprint: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(fingerprint))).hexdigest()


class Coordinator:
    """One coordinator process's view of the shared database and blob store."""

    def __init__(self, engine: Engine, store: BlobStore, domain: RequestDomain, *, lease_s: float = 120.0,
                 slash_wei: int = 10**17, clock: Callable[[], float] = time.time,
                 challenge_s: float | None = None, key: bytes | None = None) -> None:
        self.engine = engine
        self.store = store
        self.domain = domain
        self.lease_s = lease_s
        self.slash_wei = slash_wei
        self.clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self.optimistic = Optimistic(self, challenge_s)
        # Split jobs need the coordinator's key (``key``) to sign their stage-channel tokens.
        self.split = SplitJobs(self, key)
        self._swept = {"leases": -SWEEP_S, "nonces": -SWEEP_S}
        #: Tensor shapes of round checkpoints by CID (content-addressed, so never stale).
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {}

    def _due(self, sweep: str, now: float) -> bool:
        """Whether ``sweep`` last ran ``SWEEP_S`` or more ago (or the clock went back); marks it run."""
        last = self._swept[sweep]
        if last <= now < last + SWEEP_S:
            return False
        self._swept[sweep] = now
        return True

    # -- requests -----------------------------------------------------------

    def authenticate(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> SignedRequest:
        """Verify a signed request and spend its nonce; a replay raises :class:`RequestError`."""
        now = self.clock()
        request = self.domain.verify(method, path, body, headers, now)
        try:
            with self.engine.begin() as conn:
                if self._due("nonces", now):  # an expired request is refused by its expiry, spent or not
                    conn.execute(delete(nonces).where(nonces.c.expiry < int(now)))
                conn.execute(insert(nonces).values(worker=request.worker, nonce=str(request.nonce),
                                                   expiry=request.expiry))
        except SQLIntegrityError:
            raise RequestError("request replayed: its nonce was already used") from None
        return request

    # -- workers ------------------------------------------------------------

    def register_worker(self, worker: str, fingerprint: Mapping[str, Any], min_fee: int) -> dict[str, Any]:
        """Register (or update) a worker; its redundancy group is fixed at first registration."""
        if min_fee < 0 or not isinstance(fingerprint, Mapping) or not fingerprint:
            raise InputError("a worker registers a non-empty environment fingerprint and a non-negative fee")
        digest = fingerprint_digest(fingerprint)
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(workers).where(workers.c.address == worker)).one_or_none()
            if row is None:
                count = conn.execute(select(func.count()).select_from(workers)).scalar_one()
                group = int(count) % 3
                conn.execute(insert(workers).values(
                    address=worker, fingerprint=canonical_json(dict(fingerprint)).decode(),
                    fingerprint_digest=digest, min_fee=str(min_fee), grp=group, registered_at=now,
                    last_seen=now, banned=False))
            else:
                group = row.grp
                conn.execute(update(workers).where(workers.c.address == worker).values(
                    fingerprint=canonical_json(dict(fingerprint)).decode(), fingerprint_digest=digest,
                    min_fee=str(min_fee), last_seen=now))
        return {"address": worker, "group": group, "fingerprint": digest, "min_fee": min_fee}

    # -- jobs ---------------------------------------------------------------

    def add_job(self, job: JobConfig, items: list[tuple[str, str]], validation: str | None = None) -> bool:
        """Plan a job over ``items`` (CID, label) and open its first round; False if already known."""
        if job.settings is not None and job.settings.split > 1:
            cut_spec(job.spec, job.settings.split)  # a model that cannot be cut so is refused before planning
        cap = exposure_cap(len(items), job.max_exposure_bps)
        shard_of = partition(job.dataset_id, [cid for cid, _ in items], cap)
        with self.engine.begin() as conn:
            if conn.execute(select(jobs.c.id).where(jobs.c.id == job.job_id)).one_or_none() is not None:
                return False
            conn.execute(insert(jobs).values(
                id=job.job_id, dataset_id=job.dataset_id, spec=job.spec.to_json(), rounds=job.rounds,
                local_steps=job.local_steps, redundancy=job.redundancy, max_exposure_bps=job.max_exposure_bps,
                cap=cap, budget=str(job.budget), seed=job.seed, validation=validation, round=0,
                settings=job.settings.to_json() if job.settings is not None else None,
                status="running"))
            conn.execute(insert(job_items), [
                {"job_id": job.job_id, "position": i, "cid": cid, "label": label, "shard": shard_of[i]}
                for i, (cid, label) in enumerate(items)])
            start(conn, self.store, conn.execute(select(jobs).where(jobs.c.id == job.job_id)).one())
        return True

    # -- leases -------------------------------------------------------------

    def claim(self, request: SignedRequest) -> Lease | None:
        """Lease the best task this worker may take, or None when nothing fits it now."""
        worker = request.worker
        now = self.clock()
        if self._due("leases", now):
            self.expire_leases()
        with self.engine.begin() as conn:
            me = conn.execute(self._locked(select(workers).where(workers.c.address == worker))).one_or_none()
            if me is None:
                raise NotFound("worker", worker)
            if me.banned:
                raise RequestError(f"worker {worker} was slashed and gets no more tasks")
            conn.execute(update(workers).where(workers.c.address == worker).values(last_seen=now))
            for task in self._candidates(conn, me):
                lease = self._take(conn, me, task, request, now)
                if lease is not None:
                    return lease
        return None

    def _locked(self, query: Any, skip: bool = False) -> Any:
        return query.with_for_update(skip_locked=skip) if self._postgres else query

    def _candidates(self, conn: Connection, me: Any) -> list[Any]:
        """Open tasks of running jobs, the ones adding least new exposure for this worker first."""
        seen = exists().where(exposure.c.dataset_id == jobs.c.dataset_id, exposure.c.worker == me.address,
                              exposure.c.item_cid == job_items.c.cid).correlate_except(exposure)
        new = (select(func.count()).select_from(job_items)
               .where(job_items.c.job_id == tasks.c.job_id, job_items.c.shard == tasks.c.idx, ~seen)
               .correlate(tasks, jobs).scalar_subquery().label("new"))
        return list(conn.execute(
            select(tasks, jobs.c.dataset_id, jobs.c.cap, jobs.c.budget, new)
            .join(jobs, jobs.c.id == tasks.c.job_id)
            .where(tasks.c.status == "open", jobs.c.status == "running", tasks.c.round == jobs.c.round)
            .order_by(new, tasks.c.job_id, tasks.c.idx)
        ).all())

    def _new_items(self, conn: Connection, task: Any, worker: str) -> list[str]:
        seen = select(exposure.c.item_cid).where(exposure.c.dataset_id == task.dataset_id,
                                                 exposure.c.worker == worker)
        return list(conn.execute(
            select(job_items.c.cid).where(job_items.c.job_id == task.job_id, job_items.c.shard == task.idx,
                                          job_items.c.cid.not_in(seen))
        ).scalars())

    def _take(self, conn: Connection, me: Any, task: Any, request: SignedRequest, now: float) -> Lease | None:
        # Lock this one task row; a row another coordinator is deciding on is skipped, not waited for.
        if conn.execute(self._locked(select(tasks.c.id).where(tasks.c.id == task.id, tasks.c.status == "open"),
                                     skip=True)).one_or_none() is None:
            return None
        job = conn.execute(select(jobs).where(jobs.c.id == task.job_id)).one()
        if split_of(job) > 1:
            taken = self.split.take(conn, me, task, job, request, now)
            return None if taken is None else Lease(*taken)
        held = conn.execute(select(assignments).where(assignments.c.task_id == task.id)).all()
        live = [a for a in held if a.status in ("leased", "submitted")]
        if len(live) >= task.needed or any(a.worker == me.address for a in held):
            return None
        if live and live[0].fingerprint_digest != me.fingerprint_digest:
            return None  # homogeneous redundancy: replicas run in one environment
        if job.redundancy > 1 and task.needed == job.redundancy and me.grp in {a.grp for a in live}:
            return None  # the first replicas come from disjoint groups; re-runs take any fresh worker
        # One read of the shard and one of what this worker has seen serve the cap, the ledger and the task.
        shard = conn.execute(select(job_items.c.cid, job_items.c.label).where(
            job_items.c.job_id == job.id, job_items.c.shard == task.idx).order_by(job_items.c.position)).all()
        seen = set(conn.execute(select(exposure.c.item_cid).where(
            exposure.c.dataset_id == task.dataset_id, exposure.c.worker == me.address)).scalars())
        new = [cid for cid, _ in shard if cid not in seen]
        if len(seen) + len(new) > job.cap:
            return None
        if self._committed(conn, job.id) + int(me.min_fee) > int(job.budget):
            return None
        if new:  # an empty parameter list would insert one empty row
            conn.execute(insert(exposure), [
            {"dataset_id": task.dataset_id, "worker": me.address, "item_cid": cid, "job_id": job.id, "at": now}
                for cid in new])
        expires = now + self.lease_s
        lease_id = conn.execute(insert(assignments).values(
            task_id=task.id, worker=me.address, grp=me.grp, fingerprint_digest=me.fingerprint_digest,
            status="leased", leased_at=now, expires_at=expires, heartbeat_at=now,
            claim_evidence=canonical_json(request.evidence()).decode())).inserted_primary_key
        assert lease_id is not None
        return Lease(int(lease_id[0]), self._task(conn, job, task, shard), expires, commit_every(job))

    def _committed(self, conn: Connection, job_id: int) -> int:
        """Fees the job owes or may owe: live and accepted results at their workers' fees."""
        fees = conn.execute(
            select(workers.c.min_fee).join(assignments, assignments.c.worker == workers.c.address)
            .join(tasks, tasks.c.id == assignments.c.task_id)
            .where(tasks.c.job_id == job_id, assignments.c.status.in_(("leased", "submitted")),
                   (assignments.c.verdict.is_(None)) | (assignments.c.verdict == "agree"))
        ).scalars()
        return sum(int(f) for f in fees)

    def _task(self, conn: Connection, job: Any, task: Any, shard: Sequence[Any] | None = None) -> Task:
        start_at = conn.execute(select(rounds).where(rounds.c.job_id == job.id, rounds.c.round == task.round)).one()
        if shard is None:
            shard = list(conn.execute(select(job_items.c.cid, job_items.c.label).where(
                job_items.c.job_id == job.id, job_items.c.shard == task.idx).order_by(job_items.c.position)))
        return Task(job.id, task.round, task.idx, start_at.checkpoint_cid, start_at.checkpoint_sha256,
                    tuple((c, lbl) for c, lbl in shard), job.local_steps, task.seed, ModelSpec.from_json(job.spec))

    def _lease(self, conn: Connection, worker: str, lease_id: int) -> Any:
        row = conn.execute(self._locked(select(assignments).where(assignments.c.id == lease_id))).one_or_none()
        if row is None or row.worker != worker:
            raise NotFound("lease", lease_id)
        if row.status != "leased":
            raise RequestError(f"lease {lease_id} is {row.status}")
        return row

    def heartbeat(self, worker: str, lease_id: int) -> float:
        """Extend a live lease; returns its new expiry."""
        now = self.clock()
        if self._due("leases", now):
            self.expire_leases()
        with self.engine.begin() as conn:
            if self._lease(conn, worker, lease_id).expires_at < now:  # not yet swept, but over
                raise RequestError(f"lease {lease_id} expired")
            conn.execute(update(assignments).where(assignments.c.id == lease_id).values(
                heartbeat_at=now, expires_at=now + self.lease_s))
            conn.execute(update(workers).where(workers.c.address == worker).values(last_seen=now))
        return now + self.lease_s

    def blob(self, worker: str, cid: str) -> bytes:
        """A blob a live lease of ``worker`` names; anything else is refused."""
        return self.blobs(worker, [cid])[0]

    def blobs(self, worker: str, cids: list[str]) -> list[bytes]:
        """Blobs that live leases of ``worker`` name, in order; one outside them refuses the lot."""
        allowed: set[str] = set()
        with self.engine.connect() as conn:
            live = conn.execute(
                select(assignments.c.id, tasks.c.job_id, tasks.c.round, tasks.c.idx)
                .join(assignments, assignments.c.task_id == tasks.c.id)
                .where(assignments.c.worker == worker, assignments.c.status == "leased",
                       assignments.c.expires_at >= self.clock())
            ).all()
            for lease_id, job_id, round_, idx in live:
                piece = self.split.allowed(conn, lease_id, job_id, round_, idx)
                if piece is not None:  # a stage of a split job: its own piece, never the whole model
                    allowed.update(piece)
                    continue
                allowed.add(conn.execute(select(rounds.c.checkpoint_cid).where(
                    rounds.c.job_id == job_id, rounds.c.round == round_)).scalar_one())
                allowed.update(conn.execute(select(job_items.c.cid).where(
                    job_items.c.job_id == job_id, job_items.c.shard == idx)).scalars())
        for cid in cids:
            if cid not in allowed:
                raise RequestError(f"blob {cid} is not part of any live lease of {worker}")
        return [self.store.get(cid) for cid in cids]

    def expire_leases(self) -> int:
        """Expire leases past their time; each is slashed (no result) and its slot reopens."""
        now = self.clock()
        with self.engine.begin() as conn:
            stale = conn.execute(self._locked(select(assignments, tasks.c.job_id)
                                              .join(tasks, tasks.c.id == assignments.c.task_id)
                                              .where(assignments.c.status == "leased",
                                                     assignments.c.expires_at < now), skip=True)).all()
            for lease in stale:
                conn.execute(update(assignments).where(assignments.c.id == lease.id).values(status="expired"))
                evidence = {"kind": "databright.compute.missed", "job_id": lease.job_id, "lease": lease.id,
                            "expired_at": lease.expires_at, "claim": json.loads(lease.claim_evidence)}
                self._slash(conn, lease.job_id, lease.worker, lease.id, "lease expired without a result", evidence)
            self.split.lapse(conn, now)
        return len(stale)

    def _slash(self, conn: Connection, job_id: int, worker: str, assignment_id: int, reason: str,
               evidence: dict[str, Any]) -> None:
        cid = str(self.store.put(canonical_json({**evidence, "domain": {
            "chainId": self.domain.chain_id, "verifyingContract": self.domain.contract}})))
        self._record_slash(conn, job_id, worker, assignment_id, reason, cid)

    def _record_slash(self, conn: Connection, job_id: int, worker: str, assignment_id: int, reason: str,
                      cid: str) -> None:
        conn.execute(insert(slashes).values(job_id=job_id, worker=worker, assignment_id=assignment_id,
                                            reason=reason, evidence_cid=cid))
        conn.execute(update(workers).where(workers.c.address == worker).values(banned=True))

    # -- results ------------------------------------------------------------

    def submit(self, request: SignedRequest, lease_id: int, body: bytes, compute_s: float | None = None) -> str:
        """Accept a result for a lease (safetensors bytes only); returns the task's state after it."""
        state = load_checkpoint(body)  # safetensors or refused: never unpickled
        sha = hashlib.sha256(body).hexdigest()
        if request.body_digest.hex() != sha:
            raise RequestError("the signed body digest does not match the result")
        with self.engine.begin() as conn:
            lease = self._lease(conn, request.worker, lease_id)
            if lease.expires_at < self.clock():
                raise RequestError(f"lease {lease_id} expired")
            task = conn.execute(self._locked(select(tasks).where(tasks.c.id == lease.task_id))).one()
            if self.split.holds(conn, lease_id):
                outcome = self.split.submit(conn, request, lease, task, state, body, compute_s)
                if outcome == "accepted":
                    advance(conn, self.store, task.job_id)
                return outcome
            start_at = conn.execute(select(rounds).where(rounds.c.job_id == task.job_id,
                                                         rounds.c.round == task.round)).one()
            if {k: tuple(v.shape) for k, v in state.items()} != self._reference(start_at.checkpoint_cid):
                raise InputError("the result's tensors do not match the task's model")
            cid = str(self.store.put(body))
            conn.execute(update(assignments).where(assignments.c.id == lease_id).values(
                status="submitted", result_cid=cid, result_sha256=sha, compute_s=compute_s,
                result_evidence=canonical_json(request.evidence()).decode()))
            job = conn.execute(select(jobs).where(jobs.c.id == task.job_id)).one()
            if commit_every(job):  # accepted only once sampled segments replay (._optimistic)
                return self.optimistic.submitted(conn, job, lease_id)
            outcome = self._decide(conn, task)
            if outcome == "accepted":
                advance(conn, self.store, task.job_id)
        return outcome

    def _reference(self, cid: str) -> dict[str, tuple[int, ...]]:
        """The tensor shapes of a round's checkpoint, which every result of the round must have."""
        if cid not in self._shapes:
            if len(self._shapes) >= 64:  # one entry per open round is all that is ever needed
                self._shapes.clear()
            self._shapes[cid] = {k: tuple(v.shape) for k, v in load_checkpoint(self.store.get(cid)).items()}
        return self._shapes[cid]

    def _decide(self, conn: Connection, task: Any) -> str:
        job = conn.execute(select(jobs).where(jobs.c.id == task.job_id)).one()
        results = conn.execute(select(assignments).where(assignments.c.task_id == task.id,
                                                         assignments.c.status == "submitted")
                               .order_by(assignments.c.id)).all()
        verdict = decide([r.result_sha256 for r in results], job.redundancy, task.needed)
        if verdict.digest is None:
            return self._undecided(conn, job, task, verdict)
        winner = next(r for r in results if r.result_sha256 == verdict.digest)
        conn.execute(update(tasks).where(tasks.c.id == task.id).values(
            status="accepted", result_cid=winner.result_cid, result_sha256=verdict.digest))
        for i, result in enumerate(results):
            odd = i in verdict.odd
            conn.execute(update(assignments).where(assignments.c.id == result.id).values(
                verdict="odd" if odd else "agree"))
            if odd:
                evidence = {"kind": "databright.compute.mismatch", "job_id": job.id, "round": task.round,
                            "task": task.idx, "accepted_sha256": verdict.digest,
                            "submitted_sha256": result.result_sha256, "submitted_cid": result.result_cid,
                            "submission": json.loads(result.result_evidence)}
                self._slash(conn, job.id, result.worker, result.id, "result differs from the majority", evidence)
        # Leases still out for this task are not needed any more.
        conn.execute(update(assignments).where(assignments.c.task_id == task.id,
                                               assignments.c.status == "leased").values(status="released"))
        return "accepted"

    def _undecided(self, conn: Connection, job: Any, task: Any, verdict: Verdict) -> str:
        """A task without a verdict yet: ask for more results, or give the job up after too many re-runs."""
        if not verdict.more:
            return "pending"
        if task.needed >= job.redundancy * (1 + MAX_RERUNS):
            conn.execute(update(jobs).where(jobs.c.id == job.id).values(status="failed"))
            return "failed"
        conn.execute(update(tasks).where(tasks.c.id == task.id).values(needed=task.needed + verdict.more))
        return "rerun"

    def tick(self) -> None:
        """Expire leases, check optimistic results, advance rounds whose tasks are all accepted (after a restart)."""
        self.expire_leases()
        self.optimistic.tick()
        with self.engine.begin() as conn:
            for job_id in conn.execute(select(jobs.c.id).where(jobs.c.status == "running")).scalars().all():
                advance(conn, self.store, job_id)

    # -- settlement ---------------------------------------------------------

    def settlement(self, job_id: int) -> Settlement:
        """What complete_job must pay and slash for a finished job."""
        with self.engine.connect() as conn:
            job = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
            if job is None:
                raise NotFound("job", job_id)
            if job.status not in ("done", "settled"):
                raise ComputeError(f"job {job_id} is {job.status}, not finished")
            paid = conn.execute(
                select(assignments.c.worker, func.count(), workers.c.min_fee)
                .join(tasks, tasks.c.id == assignments.c.task_id)
                .join(workers, workers.c.address == assignments.c.worker)
                .where(tasks.c.job_id == job_id, assignments.c.verdict == "agree")
                .group_by(assignments.c.worker, workers.c.min_fee).order_by(assignments.c.worker)
            ).all()
            slashed = conn.execute(select(slashes).where(slashes.c.job_id == job_id).order_by(slashes.c.id)).all()
        return Settlement(job_id, tuple(Payment(w, int(n), int(fee)) for w, n, fee in paid),
                          tuple(Slash(s.worker, self.slash_wei, s.evidence_cid, s.reason) for s in slashed),
                          job.checkpoint_cid, job.checkpoint_sha256, job.report_cid)

    def mark_settled(self, job_id: int, tx: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "done").values(
                status="settled", settle_tx=tx))

    def waiting(self, job_id: int) -> str | None:
        """Why a running job's round cannot be covered by the registered workers, if it cannot."""
        with self.engine.connect() as conn:
            job = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
            if job is None or job.status != "running":
                return None
            shards = conn.execute(select(func.count()).select_from(tasks).where(
                tasks.c.job_id == job_id, tasks.c.round == job.round)).scalar_one()
            per_group = [0] * job.redundancy
            for grp, count in conn.execute(select(workers.c.grp, func.count()).where(
                    workers.c.banned.is_(False)).group_by(workers.c.grp)).all():
                if grp < job.redundancy:
                    per_group[grp] = int(count)
                elif job.redundancy == 1:
                    per_group[0] += int(count)
        return split_waiting(job, per_group) or waiting_reason(int(shards), job.redundancy, per_group)
