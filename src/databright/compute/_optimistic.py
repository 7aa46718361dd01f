"""Optimistic verification of a job's tasks: the coordinator's side, driven by pulling workers.

In a job with ``verification="optimistic"`` each task goes to one worker,
which trains with a snapshot every ``k`` steps and posts its signed
:class:`~databright.compute._commitments.Commitment` and then its result. Only
then does the coordinator draw a sampling secret (so the worker could not know
the sample when it signed) and ask, as challenges the worker polls for, for the
snapshots :func:`~databright.compute._verification.verify_run` will read: the
last, the first and both ends of every sampled segment. Once they are in,
:meth:`Optimistic.tick` runs ``verify_run`` on them. When it bisects after a
mismatch it stops with :class:`SnapshotNeeded` for the snapshot it lacks; that
becomes one more challenge and the run is repeated once it is answered (it is a
pure function of the snapshots, so it asks for the same ones each time).

Accepted: the task's result is accepted as a redundancy-1 result is, and the
round advances. Rejected (a segment does not replay bitwise, the result is not
the committed final state, or a challenge went unanswered past its deadline):
the worker is slashed with evidence built by
:func:`~databright.compute._verification.slash_for` (the commitment, the bad
segment's snapshots as blobs with their proofs, the signed submission), banned,
and the task reopens for another worker. Every step is a transaction in the
coordinator's database, so a coordinator killed mid-check resumes where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from databright.compute._challenges import (
    commitment_from_json,
    commitment_to_json,
    default_interval,
    default_samples,
    proof_from_json,
    proof_to_json,
    task_digest,
    unpack_answer,
)
from databright.compute._commitments import Commitment, Proof, boundaries, verify_proof
from databright.compute._jobspec import JobSettings
from databright.compute._requests import SignedRequest
from databright.compute._rounds import advance
from databright.compute._schema import assignments, challenges, commitments, job_items, jobs, rounds, tasks
from databright.compute._verification import Outcome, SnapshotNeeded, sample_segments, slash_for, verify_run
from databright.errors import InputError, NotFound, RequestError
from databright.compute._task import task_inputs
from databright.ml import load_checkpoint

if TYPE_CHECKING:
    from databright.compute._coordinator import Coordinator

__all__ = ["Optimistic", "commit_every", "settings_of"]


def settings_of(job: Any) -> JobSettings:
    """A job row's settings (rows written before settings existed mean what their redundancy says)."""
    return JobSettings.from_json(job.settings) if job.settings else JobSettings.for_redundancy(job.redundancy)


def commit_every(job: Any) -> int:
    """Steps per committed segment in this job's tasks; 0 when the job is not optimistically verified."""
    settings = settings_of(job)
    if settings.verification != "optimistic":
        return 0
    return settings.snapshot_every or default_interval(job.local_steps)


class Optimistic:
    """Commitments, challenges and verdicts of optimistic tasks, over the coordinator's database."""

    def __init__(self, coordinator: Coordinator, challenge_s: float | None = None) -> None:
        self.c = coordinator
        #: How long a worker has to answer each challenge; unanswered by then, it is treated as a cheat.
        self.challenge_s = coordinator.lease_s if challenge_s is None else challenge_s

    # -- requests -------------------------------------------------------------

    def commit(self, request: SignedRequest, lease_id: int, body: bytes) -> dict[str, Any]:
        """Record a worker's signed commitment for its live lease, before its result."""
        commitment = commitment_from_json(body)
        with self.c.engine.begin() as conn:
            lease = self.c._lease(conn, request.worker, lease_id)
            task_row = conn.execute(select(tasks).where(tasks.c.id == lease.task_id)).one()
            job = conn.execute(select(jobs).where(jobs.c.id == task_row.job_id)).one()
            interval = commit_every(job)
            if not interval:
                raise RequestError(f"lease {lease_id} is not an optimistically verified task")
            expected = (task_digest(self.c._task(conn, job, task_row)), interval, job.local_steps,
                        len(boundaries(job.local_steps, interval)))
            if (commitment.task, commitment.interval, commitment.steps, commitment.leaves) != expected:
                raise InputError(f"the commitment does not describe lease {lease_id}'s task "
                                 f"(task digest, interval {interval}, {job.local_steps} steps)")
            if commitment.signer(self.c.domain) != request.worker:
                raise RequestError("the commitment is not signed by the worker")
            conn.execute(commitments.delete().where(commitments.c.assignment_id == lease_id))
            conn.execute(insert(commitments).values(assignment_id=lease_id, status="committed",
                                                    commitment=commitment_to_json(commitment).decode()))
        return {"lease": lease_id, "root": "0x" + commitment.root.hex(), "leaves": commitment.leaves}

    def submitted(self, conn: Connection, job: Any, lease_id: int) -> str:
        """A result came in for an optimistic lease: draw the sample and challenge the worker."""
        row = conn.execute(select(commitments).where(commitments.c.assignment_id == lease_id)).one_or_none()
        if row is None or row.status != "committed":
            raise RequestError(f"an optimistic task's result needs its commitment first "
                               f"(POST /v1/leases/{lease_id}/commitment)")
        commitment = commitment_from_json(row.commitment.encode())
        segments = commitment.leaves - 1
        secret = os.urandom(32)
        picked = sample_segments(commitment, secret, settings_of(job).samples or default_samples(segments))
        conn.execute(update(commitments).where(commitments.c.assignment_id == lease_id).values(
            status="challenging", secret=secret.hex(), samples=json.dumps(picked)))
        self._challenge(conn, lease_id, sorted({segments, 0, *picked, *(i + 1 for i in picked)}))
        return "challenged"

    def _challenge(self, conn: Connection, lease_id: int, leaves: list[int]) -> None:
        asked = set(conn.execute(select(challenges.c.leaf).where(challenges.c.assignment_id == lease_id)).scalars())
        now = self.c.clock()
        fresh = [{"assignment_id": lease_id, "leaf": leaf, "asked_at": now, "deadline": now + self.challenge_s}
                 for leaf in leaves if leaf not in asked]  # two checks racing ask once
        if fresh:
            conn.execute(insert(challenges), fresh)

    def _own(self, conn: Connection, worker: str, lease_id: int) -> tuple[Any, Any]:
        lease = conn.execute(select(assignments).where(assignments.c.id == lease_id)).one_or_none()
        if lease is None or lease.worker != worker:
            raise NotFound("lease", lease_id)
        row = conn.execute(self.c._locked(select(commitments).where(
            commitments.c.assignment_id == lease_id))).one_or_none()
        if row is None:
            raise NotFound("commitment of lease", lease_id)
        return lease, row

    def challenges(self, worker: str, lease_id: int) -> dict[str, Any]:
        """The verdict so far on a worker's committed lease, and the snapshots it still has to serve."""
        with self.c.engine.connect() as conn:
            _, row = self._own(conn, worker, lease_id)
            open_ = conn.execute(select(challenges).where(
                challenges.c.assignment_id == lease_id, challenges.c.snapshot_cid.is_(None))
                .order_by(challenges.c.leaf)).all() if row.status == "challenging" else []
        return {"lease": lease_id, "status": row.status, "reason": row.reason,
                "challenges": [{"leaf": c.leaf, "deadline": c.deadline} for c in open_]}

    def answer(self, request: SignedRequest, lease_id: int, leaf: int, body: bytes) -> dict[str, Any]:
        """Take a snapshot a challenge asked for: safetensors, within the task's size limit, proven by its leaf."""
        with self.c.engine.begin() as conn:
            lease, row = self._own(conn, request.worker, lease_id)
            if row.status != "challenging":
                raise RequestError(f"lease {lease_id} is {row.status}: no challenge is open")
            asked = conn.execute(select(challenges).where(challenges.c.assignment_id == lease_id,
                                                          challenges.c.leaf == leaf)).one_or_none()
            if asked is None:
                raise NotFound("challenge", f"snapshot {leaf} of lease {lease_id}")
            if asked.snapshot_cid is not None:
                raise RequestError(f"snapshot {leaf} of lease {lease_id} was already served")
            if asked.deadline < self.c.clock():
                raise RequestError(f"the challenge for snapshot {leaf} of lease {lease_id} is past its deadline")
            proof, snapshot = unpack_answer(body, self._snapshot_limit(conn, lease))
            load_checkpoint(snapshot)  # safetensors or refused: never unpickled
            commitment = commitment_from_json(row.commitment.encode())
            if not verify_proof(commitment.root, leaf, commitment.leaves, hashlib.sha256(snapshot).digest(), proof):
                raise InputError(f"snapshot {leaf} does not match its Merkle proof under the committed root")
            cid = str(self.c.store.put(snapshot))
            conn.execute(update(challenges).where(challenges.c.assignment_id == lease_id,
                                                  challenges.c.leaf == leaf).values(
                snapshot_cid=cid, proof=json.dumps(proof_to_json(proof)),
                answer_evidence=json.dumps(request.evidence())))
            rest = conn.execute(select(challenges.c.leaf).where(
                challenges.c.assignment_id == lease_id, challenges.c.snapshot_cid.is_(None))).first()
        # The last snapshot asked for: the caller may check now (after answering) rather than at the next tick.
        return {"lease": lease_id, "leaf": leaf, "snapshot": cid, "complete": rest is None}

    def _snapshot_limit(self, conn: Connection, lease: Any) -> int:
        """The most bytes an honest snapshot of this task can take.

        Weights, at most two optimizer buffers per weight (Adam), the batch
        permutation (one int64 per item) and the RNG state, names and headers.
        """
        task = conn.execute(select(tasks).where(tasks.c.id == lease.task_id)).one()
        start = conn.execute(select(rounds.c.checkpoint_cid).where(
            rounds.c.job_id == task.job_id, rounds.c.round == task.round)).scalar_one()
        items = len(conn.execute(select(job_items.c.cid).where(
            job_items.c.job_id == task.job_id, job_items.c.shard == task.idx)).all())
        return 4 * self.c.store.size(start) + 8 * items + 65_536

    # -- the coordinator's own work ---------------------------------------------

    def tick(self) -> None:
        """Check every committed result whose snapshots are all in; reject those whose challenges ran out."""
        with self.c.engine.connect() as conn:
            pending = list(conn.execute(select(commitments.c.assignment_id)
                                        .where(commitments.c.status == "challenging")).scalars())
        for lease_id in pending:
            self.check(lease_id)

    def check(self, lease_id: int) -> None:
        """Decide a lease whose snapshots are all in (asking for one more if bisection needs it), or a late one."""
        now = self.c.clock()
        with self.c.engine.connect() as conn:
            row = conn.execute(select(commitments).where(commitments.c.assignment_id == lease_id)).one()
            if row.status != "challenging":
                return
            waiting = conn.execute(select(challenges).where(
                challenges.c.assignment_id == lease_id, challenges.c.snapshot_cid.is_(None))
                .order_by(challenges.c.leaf)).all()
        if waiting:
            late = [c for c in waiting if c.deadline < now]
            if late:
                self._decide(lease_id, Outcome(False, f"treated as cheating: snapshot {late[0].leaf} was not "
                                                      "served by its challenge's deadline",
                                               json.loads(row.samples), 0))
            return
        try:
            outcome = self._verify(lease_id, row)
        except SnapshotNeeded as need:
            with self.c.engine.begin() as conn:
                self._challenge(conn, lease_id, [need.index])
            return
        self._decide(lease_id, outcome)

    def _served(self, lease_id: int) -> Callable[[int], tuple[bytes, Proof]]:
        with self.c.engine.connect() as conn:
            answered = {c.leaf: (c.snapshot_cid, c.proof) for c in conn.execute(select(challenges).where(
                challenges.c.assignment_id == lease_id, challenges.c.snapshot_cid.is_not(None))).all()}

        def serve(index: int) -> tuple[bytes, Proof]:
            if index not in answered:
                raise SnapshotNeeded(index)
            cid, proof = answered[index]
            return self.c.store.get(cid), proof_from_json(json.loads(proof))

        return serve

    def _verify(self, lease_id: int, row: Any) -> Outcome:
        """``verify_run`` on what the worker served so far (outside any transaction: it trains)."""
        with self.c.engine.connect() as conn:
            lease = conn.execute(select(assignments).where(assignments.c.id == lease_id)).one()
            task_row = conn.execute(select(tasks).where(tasks.c.id == lease.task_id)).one()
            job = conn.execute(select(jobs).where(jobs.c.id == task_row.job_id)).one()
            task = self.c._task(conn, job, task_row)
        state, x, y = task_inputs(task, self.c.store.get)
        return verify_run(task.spec, state, x, y, seed=task.seed,
                          commitment=commitment_from_json(row.commitment.encode()),
                          result=self.c.store.get(lease.result_cid), serve=self._served(lease_id),
                          segments=json.loads(row.samples), domain=self.c.domain, worker=lease.worker)

    def _decide(self, lease_id: int, outcome: Outcome) -> None:
        with self.c.engine.begin() as conn:
            row = conn.execute(self.c._locked(select(commitments).where(
                commitments.c.assignment_id == lease_id))).one()
            if row.status != "challenging":
                return  # another coordinator on this database decided first
            lease = conn.execute(select(assignments).where(assignments.c.id == lease_id)).one()
            task = conn.execute(self.c._locked(select(tasks).where(tasks.c.id == lease.task_id))).one()
            conn.execute(update(commitments).where(commitments.c.assignment_id == lease_id).values(
                status="accepted" if outcome.accepted else "rejected", reason=outcome.reason,
                replayed_steps=outcome.replayed_steps, bad_segment=outcome.bad_segment))
            if outcome.accepted:
                if self.c._decide(conn, task) == "accepted":
                    advance(conn, self.c.store, task.job_id)
                return
            conn.execute(update(assignments).where(assignments.c.id == lease_id).values(
                status="rejected", verdict="odd"))
            outcome.evidence = self._evidence(conn, lease, task, row, outcome)
            slash = slash_for(outcome, lease.worker, self.c.slash_wei, self.c.store)
            assert slash is not None
            self.c._record_slash(conn, task.job_id, lease.worker, lease_id, outcome.reason, slash.evidence_cid)

    def _evidence(self, conn: Connection, lease: Any, task: Any, row: Any, outcome: Outcome) -> dict[str, Any]:
        """What lets anyone re-check the verdict: the signed commitment and submission, snapshots' proofs."""
        commitment: Commitment = commitment_from_json(row.commitment.encode())
        evidence = dict(outcome.evidence or {"kind": "refused"})
        proven = [0] if evidence.get("kind") == "start" else (
            [outcome.bad_segment, outcome.bad_segment + 1] if outcome.bad_segment is not None else [])
        proofs = dict(conn.execute(select(challenges.c.leaf, challenges.c.proof).where(
            challenges.c.assignment_id == lease.id, challenges.c.leaf.in_(proven))).all())
        evidence.update({
            "commitment": commitment.evidence(), "proofs": [json.loads(proofs[i]) for i in proven],
            "job_id": task.job_id, "round": task.round, "task": task.idx, "lease": lease.id,
            "samples": json.loads(row.samples), "submitted_cid": lease.result_cid,
            "submission": json.loads(lease.result_evidence),
            "domain": {"chainId": self.c.domain.chain_id, "verifyingContract": self.c.domain.contract}})
        return evidence
