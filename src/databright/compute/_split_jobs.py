"""Split jobs on the coordinator: a task trained as a pipeline of stage leases.

A job with ``split=k`` runs each of its tasks (one shard, one round) as a
pipeline of k stages. The coordinator cuts the job's spec once
(:func:`cut_spec`), cuts each round's starting state into one piece per stage
(:func:`split_state`) and stores the pieces; a stage lease entitles its worker
to fetch its own piece and, for stage 0 only, the shard's items — never the
whole model or another piece. So the exposure ledger counts the shard's items
for stage 0 alone: the other stages see activations, labels and gradients,
not items.

No worker holds two stages of one task. With redundancy 3 the task runs as
three pipelines, each from one redundancy group and the three groups
disjoint. Stages meet without the coordinator relaying tensors: each stage
after the first reports the address it listens on, and once every stage of a
pipeline has claimed and listens the coordinator gives each stage its
downstream neighbour's address and a :class:`StageToken` it signs, bound to
the job, the pipeline and both workers' keys. A pipeline that does not form
within a lease, or one of whose stages goes silent, lapses: its leases are
released (the silent one is slashed as any expired lease) and the task's slot
reopens. A pipeline whose channel broke (a stage reports a malformed or
oversized frame) fails; its workers do not get that task again, and a task
whose pipelines fail :data:`MAX_FAILED` times fails the job.

When a pipeline's pieces are all in, each checked against its stage's
tensors, the coordinator joins them (:func:`join_states`): only the
coordinator ever holds the whole model. The joined states of a task's
pipelines are then compared by digest as results of unsplit tasks are, and a
replica's piece that differs from the accepted pipeline's is the odd one out.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from eth_account import Account
from sqlalchemy import Connection, func, insert, select, update

from databright.compute._jobspec import JobSettings
from databright.compute._redundancy import decide
from databright.compute._requests import SignedRequest
from databright.compute._schema import (
    assignments,
    exposure,
    job_items,
    jobs,
    pieces,
    pipelines,
    rounds,
    stages,
    tasks,
)
from databright.compute._splitting import StageSpec, cut_spec, join_states, split_state
from databright.compute._stage_channel import StageToken
from databright.compute._stage_worker import StageTask
from databright.errors import InputError, RequestError
from databright.ml import ModelSpec, load_checkpoint, save_checkpoint
from databright.storage import canonical_json

if TYPE_CHECKING:
    from databright.compute._coordinator import Coordinator

__all__ = ["MAX_FAILED", "SplitJobs", "split_of", "split_report"]

#: Pipelines of one task whose stage channel broke before the job is given up.
MAX_FAILED = 3
_LIVE = ("forming", "running")


def split_of(job: Any) -> int:
    """Into how many pieces a job row's model is cut (1: not split)."""
    return JobSettings.from_json(job.settings).split if job.settings else 1


def stage_specs(job: Any) -> tuple[StageSpec, ...]:
    return cut_spec(ModelSpec.from_json(job.spec), split_of(job))


def _inserted(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _batch(spec: ModelSpec, items: int) -> int:
    """Items per step, as :func:`databright.ml.train` draws them (the whole shard when it is small)."""
    return items if spec.batch_size == 0 or spec.batch_size >= items else spec.batch_size


class SplitJobs:
    """The coordinator's split-job half: stage leases, rendezvous, pieces and their assembly."""

    def __init__(self, coordinator: Coordinator, key: bytes | None) -> None:
        self.coordinator = coordinator
        self._key = key
        self.address = Account.from_key(key).address if key is not None else None

    # -- claims ---------------------------------------------------------------

    def take(self, conn: Connection, me: Any, task: Any, job: Any, request: SignedRequest,
             now: float) -> tuple[int, StageTask, float] | None:
        """Lease this worker a stage of one of the task's pipelines, if one fits it."""
        if self._key is None:
            return None  # without a key this coordinator cannot authorise stage channels
        held = conn.execute(select(assignments).where(assignments.c.task_id == task.id)).all()
        broken = set(conn.execute(
            select(assignments.c.worker).join(stages, stages.c.assignment_id == assignments.c.id)
            .join(pipelines, pipelines.c.id == stages.c.pipeline_id)
            .where(pipelines.c.task_id == task.id, pipelines.c.status == "failed")).scalars())
        if me.address in broken or any(a.worker == me.address and a.status != "released" for a in held):
            return None  # never two stages of one task for one worker, nor a task whose channel broke with it
        live = [a for a in held if a.status in ("leased", "submitted")]
        if live and live[0].fingerprint_digest != me.fingerprint_digest:
            return None  # homogeneous redundancy: replicas of a piece run in one environment
        k = split_of(job)
        active = conn.execute(select(pipelines).where(
            pipelines.c.task_id == task.id, pipelines.c.status.in_((*_LIVE, "submitted"))
        ).order_by(pipelines.c.id)).all()
        grouped = job.redundancy > 1 and task.needed == job.redundancy
        pipeline, stage = None, 0
        for row in active:
            if row.status != "forming" or (grouped and row.grp != me.grp):
                continue
            taken = set(conn.execute(select(stages.c.stage).where(stages.c.pipeline_id == row.id)).scalars())
            if len(taken) < k:
                pipeline, stage = row.id, min(set(range(k)) - taken)
                break
        if pipeline is None:
            if len(active) >= task.needed or (grouped and me.grp in {row.grp for row in active}):
                return None
        new = self.coordinator._new_items(conn, task, me.address) if stage == 0 else []
        seen = conn.execute(select(func.count()).select_from(exposure).where(
            exposure.c.dataset_id == task.dataset_id, exposure.c.worker == me.address)).scalar_one()
        if int(seen) + len(new) > job.cap:
            return None
        if self.coordinator._committed(conn, job.id) + int(me.min_fee) > int(job.budget):
            return None
        if pipeline is None:
            pipeline = _inserted(conn.execute(insert(pipelines).values(
                task_id=task.id, grp=me.grp, status="forming", form_by=now + self.coordinator.lease_s)))
        if new:
            conn.execute(insert(exposure), [
                {"dataset_id": task.dataset_id, "worker": me.address, "item_cid": cid, "job_id": job.id, "at": now}
                for cid in new])
        expires = now + self.coordinator.lease_s
        lease = _inserted(conn.execute(insert(assignments).values(
            task_id=task.id, worker=me.address, grp=me.grp, fingerprint_digest=me.fingerprint_digest,
            status="leased", leased_at=now, expires_at=expires, heartbeat_at=now,
            claim_evidence=canonical_json(request.evidence()).decode())))
        conn.execute(insert(stages).values(assignment_id=lease, pipeline_id=pipeline, stage=stage))
        self._form(conn, pipeline, k)
        return lease, self._stage_task(conn, job, task, pipeline, stage), expires

    def _stage_task(self, conn: Connection, job: Any, task: Any, pipeline: int, stage: int) -> StageTask:
        specs = stage_specs(job)
        piece = self._pieces(conn, job, task.round, specs)[stage]
        shard = conn.execute(select(job_items.c.cid, job_items.c.label).where(
            job_items.c.job_id == job.id, job_items.c.shard == task.idx).order_by(job_items.c.position)).all()
        spec = ModelSpec.from_json(job.spec)
        return StageTask(job.id, task.round, task.idx, pipeline, specs[stage], piece.checkpoint_cid,
                         piece.checkpoint_sha256, tuple((c, lbl) for c, lbl in shard) if stage == 0 else (),
                         job.local_steps, task.seed, _batch(spec, len(shard)), spec)

    def _pieces(self, conn: Connection, job: Any, round_: int, specs: tuple[StageSpec, ...]) -> list[Any]:
        """The round's pieces, cut from its checkpoint the first time a stage of it is leased."""
        query = select(pieces).where(pieces.c.job_id == job.id, pieces.c.round == round_).order_by(pieces.c.stage)
        rows = conn.execute(query).all()
        if not rows:
            start = conn.execute(select(rounds.c.checkpoint_cid).where(
                rounds.c.job_id == job.id, rounds.c.round == round_)).scalar_one()
            state = load_checkpoint(self.coordinator.store.get(start))
            for spec, piece in zip(specs, split_state(specs, state), strict=True):
                blob = save_checkpoint(piece)
                conn.execute(insert(pieces).values(job_id=job.id, round=round_, stage=spec.index,
                                                   checkpoint_cid=str(self.coordinator.store.put(blob)),
                                                   checkpoint_sha256=hashlib.sha256(blob).hexdigest()))
            rows = conn.execute(query).all()
        return list(rows)

    # -- which blobs a stage lease may fetch -----------------------------------

    def allowed(self, conn: Connection, lease_id: int, job_id: int, round_: int, idx: int) -> set[str] | None:
        """The blobs a stage lease names (its piece; stage 0 also the shard), or None if not a stage lease."""
        stage = conn.execute(select(stages.c.stage).where(stages.c.assignment_id == lease_id)).scalar_one_or_none()
        if stage is None:
            return None
        allowed = set(conn.execute(select(pieces.c.checkpoint_cid).where(
            pieces.c.job_id == job_id, pieces.c.round == round_, pieces.c.stage == stage)).scalars())
        if stage == 0:
            allowed.update(conn.execute(select(job_items.c.cid).where(
                job_items.c.job_id == job_id, job_items.c.shard == idx)).scalars())
        return allowed

    # -- rendezvous -------------------------------------------------------------

    def _stage_lease(self, conn: Connection, worker: str, lease_id: int) -> tuple[Any, Any, Any]:
        """(lease, its stage row, its pipeline row) of a live stage lease of ``worker``."""
        lease = self.coordinator._lease(conn, worker, lease_id)
        if lease.expires_at < self.coordinator.clock():
            raise RequestError(f"lease {lease_id} expired")
        stage = conn.execute(select(stages).where(stages.c.assignment_id == lease_id)).one_or_none()
        if stage is None:
            raise RequestError(f"lease {lease_id} is not a stage of a split job")
        pipeline = conn.execute(select(pipelines).where(pipelines.c.id == stage.pipeline_id)).one()
        if pipeline.status not in _LIVE:
            raise RequestError(f"pipeline {pipeline.id} {pipeline.status}: {pipeline.failure or 'task decided'}")
        return lease, stage, pipeline

    def listen(self, request: SignedRequest, lease_id: int, body: bytes) -> dict[str, str]:
        """Record where a stage after the first accepts its upstream neighbour."""
        try:
            data = json.loads(body)
            host, port = data["host"], data["port"]
            if not isinstance(host, str) or not 0 < len(host) <= 255 or any(c.isspace() for c in host) \
                    or type(port) is not int or not 0 < port < 65536:
                raise TypeError("host is a name or address, port 1 to 65535")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"a stage listens on JSON {{\"host\": ..., \"port\": ...}} ({exc})") from None
        with self.coordinator.engine.begin() as conn:
            _lease, stage, pipeline = self._stage_lease(conn, request.worker, lease_id)
            if stage.stage == 0:
                raise InputError("the first stage has no upstream neighbour to listen for")
            if stage.listen is not None:
                raise RequestError(f"stage {stage.stage} of pipeline {pipeline.id} already listens")
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            conn.execute(update(stages).where(stages.c.assignment_id == lease_id).values(listen=address))
            job = conn.execute(select(jobs).join(tasks, tasks.c.job_id == jobs.c.id)
                               .where(tasks.c.id == pipeline.task_id)).one()
            status = self._form(conn, pipeline.id, split_of(job))
        return {"pipeline": status}

    def _form(self, conn: Connection, pipeline: int, k: int) -> str:
        """A pipeline whose k stages have claimed and whose receivers listen starts running."""
        rows = conn.execute(select(stages).where(stages.c.pipeline_id == pipeline)).all()
        if len(rows) == k and all(r.listen is not None for r in rows if r.stage > 0):
            conn.execute(update(pipelines).where(pipelines.c.id == pipeline, pipelines.c.status == "forming")
                         .values(status="running"))
            return "running"
        return "forming"

    def peers(self, request: SignedRequest, lease_id: int) -> dict[str, Any] | None:
        """A stage's neighbours once its pipeline runs (None while it forms), with its downstream token."""
        with self.coordinator.engine.begin() as conn:
            lease, stage, pipeline = self._stage_lease(conn, request.worker, lease_id)
            if pipeline.status == "forming":
                return None
            job_id = conn.execute(select(tasks.c.job_id).where(tasks.c.id == pipeline.task_id)).scalar_one()
            members = {r.stage: r for r in conn.execute(
                select(stages.c.stage, stages.c.listen, assignments.c.worker)
                .join(assignments, assignments.c.id == stages.c.assignment_id)
                .where(stages.c.pipeline_id == pipeline.id)).all()}
        upstream = members[stage.stage - 1].worker if stage.stage > 0 else None
        downstream = None
        below = members.get(stage.stage + 1)
        if below is not None:
            assert self._key is not None
            token = StageToken.issue(self.coordinator.domain, self._key, job=job_id, task=pipeline.id,
                                     stage=stage.stage, sender=lease.worker, receiver=below.worker,
                                     lifetime=int(self.coordinator.lease_s) + 60)
            downstream = {"worker": below.worker, "address": below.listen, "token": token.to_bytes().hex()}
        return {"pipeline": pipeline.id, "coordinator": self.address, "upstream": upstream,
                "downstream": downstream}

    def abort(self, request: SignedRequest, lease_id: int, body: bytes) -> dict[str, str]:
        """A stage reports that its channel broke: the pipeline ends for this task."""
        try:
            reason = str(json.loads(body)["reason"])[:500]
        except (ValueError, KeyError, TypeError):
            raise InputError("an abort is JSON {\"reason\": ...}") from None
        with self.coordinator.engine.begin() as conn:
            _lease, stage, pipeline = self._stage_lease(conn, request.worker, lease_id)
            self._end(conn, pipeline.id, "failed", f"stage {stage.stage} ({request.worker}) reported: {reason}")
            task = conn.execute(select(tasks).where(tasks.c.id == pipeline.task_id)).one()
            failed = conn.execute(select(func.count()).select_from(pipelines).where(
                pipelines.c.task_id == task.id, pipelines.c.status == "failed")).scalar_one()
            if int(failed) >= MAX_FAILED:
                conn.execute(update(jobs).where(jobs.c.id == task.job_id).values(status="failed"))
        return {"pipeline": "failed"}

    def _end(self, conn: Connection, pipeline: int, status: str, reason: str) -> None:
        """End a pipeline: its leases (and any pieces already in) are released, unpaid and unslashed."""
        conn.execute(update(pipelines).where(pipelines.c.id == pipeline).values(status=status, failure=reason))
        members = select(stages.c.assignment_id).where(stages.c.pipeline_id == pipeline)
        conn.execute(update(assignments).where(assignments.c.id.in_(members),
                                               assignments.c.status.in_(("leased", "submitted")))
                     .values(status="released"))

    def lapse(self, conn: Connection, now: float) -> None:
        """Lapse pipelines that did not form in time or one of whose stages went silent."""
        for row in conn.execute(select(pipelines).where(pipelines.c.status.in_(_LIVE))).all():
            silent = conn.execute(select(stages.c.stage, assignments.c.worker)
                                  .join(assignments, assignments.c.id == stages.c.assignment_id)
                                  .where(stages.c.pipeline_id == row.id, assignments.c.status == "expired")).first()
            if silent is not None:
                self._end(conn, row.id, "lapsed", f"stage {silent.stage} ({silent.worker}) went silent")
            elif row.status == "forming" and row.form_by < now:
                self._end(conn, row.id, "lapsed", "not every stage was claimed within a lease")

    # -- results ----------------------------------------------------------------

    def holds(self, conn: Connection, lease_id: int) -> bool:
        return conn.execute(select(stages.c.stage).where(stages.c.assignment_id == lease_id)).first() is not None

    def submit(self, conn: Connection, request: SignedRequest, lease: Any, task: Any, state: dict[str, Any],
               body: bytes, compute_s: float | None) -> str:
        """Take one piece's trained state (``body``, read as ``state``); join a pipeline whose pieces are
        all in and decide the task."""
        stage = conn.execute(select(stages).where(stages.c.assignment_id == lease.id)).one()
        pipeline = conn.execute(select(pipelines).where(pipelines.c.id == stage.pipeline_id)).one()
        if pipeline.status != "running":
            raise RequestError(f"pipeline {pipeline.id} is {pipeline.status}")
        start = conn.execute(select(pieces.c.checkpoint_cid).where(
            pieces.c.job_id == task.job_id, pieces.c.round == task.round, pieces.c.stage == stage.stage)).scalar_one()
        reference = load_checkpoint(self.coordinator.store.get(start))
        if {k: tuple(v.shape) for k, v in state.items()} != {k: tuple(v.shape) for k, v in reference.items()}:
            raise InputError(f"the result's tensors do not match stage {stage.stage} of the task's model")
        conn.execute(update(assignments).where(assignments.c.id == lease.id).values(
            status="submitted", result_cid=str(self.coordinator.store.put(body)),
            result_sha256=hashlib.sha256(body).hexdigest(), compute_s=compute_s,
            result_evidence=canonical_json(request.evidence()).decode()))
        job = conn.execute(select(jobs).where(jobs.c.id == task.job_id)).one()
        specs = stage_specs(job)
        members = self._members(conn, pipeline.id)
        if len(members) < len(specs) or any(m.status != "submitted" for m in members):
            return "pending"
        whole = save_checkpoint(join_states(specs, [load_checkpoint(self.coordinator.store.get(m.result_cid))
                                                    for m in members]))
        conn.execute(update(pipelines).where(pipelines.c.id == pipeline.id).values(
            status="submitted", result_cid=str(self.coordinator.store.put(whole)),
            result_sha256=hashlib.sha256(whole).hexdigest()))
        return self._decide(conn, job, task)

    def _members(self, conn: Connection, pipeline: int) -> list[Any]:
        return list(conn.execute(
            select(assignments, stages.c.stage).join(stages, stages.c.assignment_id == assignments.c.id)
            .where(stages.c.pipeline_id == pipeline).order_by(stages.c.stage)).all())

    def _decide(self, conn: Connection, job: Any, task: Any) -> str:
        done = conn.execute(select(pipelines).where(pipelines.c.task_id == task.id, pipelines.c.status == "submitted")
                            .order_by(pipelines.c.id)).all()
        verdict = decide([p.result_sha256 for p in done], job.redundancy, task.needed)
        if verdict.digest is None:
            return self.coordinator._undecided(conn, job, task, verdict)
        winner = next(p for p in done if p.result_sha256 == verdict.digest)
        accepted = {m.stage: m.result_sha256 for m in self._members(conn, winner.id)}
        conn.execute(update(tasks).where(tasks.c.id == task.id).values(
            status="accepted", result_cid=winner.result_cid, result_sha256=verdict.digest))
        for pipeline in done:
            for member in self._members(conn, pipeline.id):
                odd = member.result_sha256 != accepted[member.stage]
                conn.execute(update(assignments).where(assignments.c.id == member.id).values(
                    verdict="odd" if odd else "agree"))
                if odd:
                    evidence = {"kind": "databright.compute.mismatch", "job_id": job.id, "round": task.round,
                                "task": task.idx, "stage": member.stage, "accepted_sha256": accepted[member.stage],
                                "submitted_sha256": member.result_sha256, "submitted_cid": member.result_cid,
                                "submission": json.loads(member.result_evidence)}
                    self.coordinator._slash(conn, job.id, member.worker, member.id,
                                            f"piece {member.stage} differs from the majority", evidence)
        for pipeline in conn.execute(select(pipelines.c.id).where(pipelines.c.task_id == task.id,
                                                                  pipelines.c.status.in_(_LIVE))).scalars().all():
            self._end(conn, pipeline, "lapsed", "the task was decided without it")
        return "accepted"


def split_report(conn: Connection, job: Any) -> dict[str, Any]:
    """The job report's account of a split job: how the model was cut and who held which piece."""
    if split_of(job) == 1:
        return {}
    specs = stage_specs(job)
    rows = conn.execute(
        select(tasks.c.round, tasks.c.idx, pipelines.c.id, pipelines.c.status, pipelines.c.failure,
               stages.c.stage, assignments.c.worker, assignments.c.status.label("lease"), assignments.c.verdict)
        .join(pipelines, pipelines.c.task_id == tasks.c.id)
        .join(stages, stages.c.pipeline_id == pipelines.c.id)
        .join(assignments, assignments.c.id == stages.c.assignment_id)
        .where(tasks.c.job_id == job.id).order_by(pipelines.c.id, stages.c.stage)).all()
    by_pipeline: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = by_pipeline.setdefault(r.id, {"round": r.round, "task": r.idx, "pipeline": r.id, "status": r.status,
                                              "failure": r.failure, "stages": []})
        entry["stages"].append({"stage": r.stage, "worker": r.worker, "status": r.lease, "verdict": r.verdict})
    return {"split": {
        "pieces": [{"stage": s.index, "first_layer": s.first_layer, "layers": [layer.op for layer in s.layers],
                    "params": sum(layer.params() for layer in s.layers)} for s in specs],
        "pipelines": list(by_pipeline.values()),
    }}

