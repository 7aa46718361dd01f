"""Verified predictions: a serving job's requests answered by compute-market workers.

A model's owner submits a serving job on chain (``ComputeMarket.submit_serving``)
and points their prediction server at a coordinator. The server keeps taking
the users' vouchers; each request's items go to the coordinator (signed by the
owner's key), which hands them to workers pulling like they pull tasks. With
redundancy 3 a request goes to three workers of disjoint groups with one
environment fingerprint; the first answer that two of them agree on (by digest:
labels and float32 probabilities, bit-identical in the pinned environment) is
returned, and every answer that differs from it is slashed with the evidence
(request, both answers and the workers' signatures). With redundancy 1 one
worker answers and the coordinator re-runs a sampled share of the requests
itself (``spot_check``); a differing answer is replaced by the coordinator's
and slashed. When the workers cannot decide (three different answers) or do
not answer in time, the coordinator, which holds the model, answers itself:
a paying user always gets the model's answer. Workers are paid the job's fee
per prediction they answered in agreement, at settlement.

Serving hands the workers the registered version's weights: unlike model
splitting, it does not keep the model from them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import Engine

from databright.compute._jobs import Settlement
from databright.compute._requests import RequestDomain, SignedRequest
from databright.compute._schema import workers
from databright.compute._serving_answers import Answer, frame_items, infer, unframe_items
from databright.compute._serving_report import job_row, serving_settlement, serving_status
from databright.compute._serving_schema import (
    serving_answers,
    serving_jobs,
    serving_metadata,
    serving_requests,
    serving_slashes,
)
from databright.errors import ComputeError, InputError, NotFound, RequestError
from databright.ml import ModelSpec, load_checkpoint
from databright.storage import BlobStore, canonical_json

__all__ = ["ServingDesk", "ServingJob", "ServingLease"]

#: Longest a worker's claim or an owner's request waits for its counterpart (seconds).
MAX_WAIT = 30.0


@dataclass(frozen=True)
class ServingJob:
    """A serving job as the chain recorded it, with the registered version resolved."""

    job_id: int
    model_id: int
    version: int
    owner: str
    spec: ModelSpec
    checkpoint_cid: str
    checkpoint_sha256: str
    redundancy: int
    fee: int
    budget: int
    spot_check: float = 0.1


@dataclass(frozen=True)
class ServingLease:
    answer_id: int
    request_id: int
    job_id: int
    spec: ModelSpec
    checkpoint_cid: str
    checkpoint_sha256: str
    input_sha256: str
    items: list[bytes]
    expires_at: float


def _new_id(key: Any) -> int:
    assert key is not None
    return int(key[0])


class ServingDesk:
    """The coordinator's serving side, over the coordinator's database and blob store."""

    def __init__(self, engine: Engine, store: BlobStore, domain: RequestDomain, *, lease_s: float = 30.0,
                 answer_timeout_s: float = 20.0, slash_wei: int = 10**17,
                 clock: Callable[[], float] = time.time) -> None:
        serving_metadata.create_all(engine)
        self.engine = engine
        self.store = store
        self.domain = domain
        self.lease_s = lease_s
        self.answer_timeout_s = answer_timeout_s
        self.slash_wei = slash_wei
        self.clock = clock
        # bumped on every new request or answer, so a waiter never sleeps through one
        self._changed = threading.Condition()
        self._generation = 0
        self._models: dict[int, tuple[ModelSpec, dict[str, Any]]] = {}
        # SQLite makes a second writer sleep and retry (milliseconds at a time); threads of this
        # process queue here instead, and other processes still meet at the database's lock
        self._db = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._db, self.engine.begin() as conn:
            yield conn

    # -- jobs ---------------------------------------------------------------

    def add_job(self, job: ServingJob) -> bool:
        """Start serving a job; False if it is already known."""
        if job.redundancy not in (1, 3) or job.fee <= 0 or not 0.0 <= job.spot_check <= 1.0:
            raise InputError("a serving job has redundancy 1 or 3, a positive fee and a spot-check share in [0, 1]")
        with self._tx() as conn:
            if conn.execute(select(serving_jobs.c.id).where(serving_jobs.c.id == job.job_id)).first() is not None:
                return False
            conn.execute(insert(serving_jobs).values(
                id=job.job_id, model_id=job.model_id, version=job.version, owner=job.owner,
                spec=job.spec.to_json(), checkpoint_cid=job.checkpoint_cid, checkpoint_sha256=job.checkpoint_sha256,
                redundancy=job.redundancy, fee=str(job.fee), budget=str(job.budget), spot_check=job.spot_check,
                status="serving"))
        return True

    def _model(self, job: Any) -> tuple[ModelSpec, dict[str, Any]]:
        if job.id not in self._models:
            blob = self.store.get(job.checkpoint_cid)
            if hashlib.sha256(blob).hexdigest() != job.checkpoint_sha256:
                raise ComputeError(f"serving job {job.id}: the checkpoint does not match its registered digest")
            self._models[job.id] = (ModelSpec.from_json(job.spec), load_checkpoint(blob))
        return self._models[job.id]

    # -- the owner's requests -------------------------------------------------

    def predict(self, request: SignedRequest, job_id: int, items: list[bytes]) -> dict[str, Any]:
        """Answer the owner's request: the agreed answer, or the coordinator's own after a timeout."""
        with self._tx() as conn:
            job = job_row(conn, job_id)
        if request.worker != job.owner:
            raise RequestError(f"only the model's owner {job.owner} sends requests to serving job {job_id}")
        if job.status != "serving":
            raise ComputeError(f"serving job {job_id} is {job.status}")
        body = frame_items(items)
        digest = hashlib.sha256(body).hexdigest()
        now = self.clock()
        with self._tx() as conn:
            request_id = _new_id(conn.execute(insert(serving_requests).values(
                job_id=job_id, input=body, input_sha256=digest, item_count=len(items), needed=job.redundancy,
                status="open", created_at=now)).inserted_primary_key)
        self._notify()
        deadline = time.monotonic() + self.answer_timeout_s
        while True:
            seen = self._seen()
            answered = self._answered(request_id)
            if answered is not None:
                return answered
            if time.monotonic() >= deadline:
                self._answer_myself(request_id, "no agreed answer from workers in time")
                continue
            self._wait(seen, 0.05)

    def _answered(self, request_id: int) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(select(serving_requests).where(serving_requests.c.id == request_id)).one()
        if row.status != "answered":
            return None
        return {"request": row.id, "answer": json.loads(row.answer),
                "answer_sha256": row.answer_sha256, "answered_by": row.answered_by}

    def _answer_myself(self, request_id: int, why: str) -> None:
        with self._tx() as conn:
            row = conn.execute(select(serving_requests).where(serving_requests.c.id == request_id)).one()
            if row.status == "answered":
                return
            job = job_row(conn, row.job_id)
            mine = self._own_answer(job, row)
            self._settle_request(conn, job, row, mine, "coordinator", why)

    def _own_answer(self, job: Any, row: Any) -> Answer:
        spec, state = self._model(job)
        return infer(spec, state, unframe_items(row.input), row.id, row.input_sha256)

    def _seen(self) -> int:
        with self._changed:
            return self._generation

    def _wait(self, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` unless something changed since ``seen`` (other processes: by polling)."""
        with self._changed:
            if self._generation == seen:
                self._changed.wait(timeout)

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    # -- workers --------------------------------------------------------------

    def claim(self, request: SignedRequest, wait_s: float = 0.0) -> ServingLease | None:
        """Lease a request this worker may answer, waiting up to ``wait_s`` for one to arrive."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT)
        while True:
            seen = self._seen()
            lease = self._claim_now(request.worker)
            if lease is not None or time.monotonic() >= deadline:
                return lease
            self._wait(seen, min(0.05, max(deadline - time.monotonic(), 0.0)))

    def _claim_now(self, worker: str) -> ServingLease | None:
        now = self.clock()
        with self._tx() as conn:
            me = conn.execute(select(workers).where(workers.c.address == worker)).one_or_none()
            if me is None:
                raise NotFound("worker", worker)
            if me.banned:
                raise RequestError(f"worker {worker} was slashed and gets no more requests")
            conn.execute(update(serving_answers).where(serving_answers.c.status == "leased",
                                                       serving_answers.c.expires_at < now).values(status="expired"))
            open_rows = conn.execute(
                select(serving_requests, serving_jobs.c.redundancy, serving_jobs.c.fee, serving_jobs.c.budget)
                .join(serving_jobs, serving_jobs.c.id == serving_requests.c.job_id)
                .where(serving_requests.c.status == "open", serving_jobs.c.status == "serving")
                .order_by(serving_requests.c.id)).all()
            for row in open_rows:
                if int(me.min_fee) > int(row.fee):
                    continue
                held = conn.execute(select(serving_answers).where(serving_answers.c.request_id == row.id)).all()
                live = [a for a in held if a.status in ("leased", "answered")]
                if len(live) >= row.needed or any(a.worker == worker for a in held):
                    continue
                if live and live[0].fingerprint_digest != me.fingerprint_digest:
                    continue  # homogeneous redundancy: one environment answers one request
                if row.redundancy > 1 and me.grp in {a.grp for a in live}:
                    continue  # disjoint groups
                if (self._committed(conn, row.job_id) + row.item_count) * int(row.fee) > int(row.budget):
                    continue
                expires = now + self.lease_s
                answer_id = _new_id(conn.execute(insert(serving_answers).values(
                    request_id=row.id, worker=worker, grp=me.grp, fingerprint_digest=me.fingerprint_digest,
                    status="leased", leased_at=now, expires_at=expires)).inserted_primary_key)
                job = job_row(conn, row.job_id)
                return ServingLease(answer_id, row.id, row.job_id, ModelSpec.from_json(job.spec),
                                    job.checkpoint_cid, job.checkpoint_sha256, row.input_sha256,
                                    unframe_items(row.input), expires)
        return None

    def _committed(self, conn: Connection, job_id: int) -> int:
        """Predictions the job owes or may owe: live answers not found odd."""
        count = conn.execute(
            select(func.coalesce(func.sum(serving_requests.c.item_count), 0))
            .join(serving_answers, serving_answers.c.request_id == serving_requests.c.id)
            .where(serving_requests.c.job_id == job_id, serving_answers.c.status.in_(("leased", "answered")),
                   serving_answers.c.verdict.is_(None) | (serving_answers.c.verdict == "agree"))).scalar_one()
        return int(count)

    def checkpoint(self, worker: str, cid: str) -> bytes:
        """A serving job's checkpoint, for a worker that holds or held a lease on that job."""
        with self._tx() as conn:
            served = conn.execute(
                select(serving_jobs.c.id)
                .join(serving_requests, serving_requests.c.job_id == serving_jobs.c.id)
                .join(serving_answers, serving_answers.c.request_id == serving_requests.c.id)
                .where(serving_answers.c.worker == worker, serving_jobs.c.checkpoint_cid == cid)).first()
        if served is None:
            raise RequestError(f"blob {cid} is not the model of any serving lease of {worker}")
        return self.store.get(cid)

    def answer(self, request: SignedRequest, answer_id: int, body: bytes) -> str:
        """Record a worker's answer to its lease; returns the request's state after it."""
        if request.body_digest != hashlib.sha256(body).digest():
            raise RequestError("the signed body digest does not match the answer")
        with self._tx() as conn:
            lease = conn.execute(select(serving_answers).where(serving_answers.c.id == answer_id)).one_or_none()
            if lease is None or lease.worker != request.worker:
                raise NotFound("serving lease", answer_id)
            if lease.status != "leased":
                raise RequestError(f"serving lease {answer_id} is {lease.status}")
            if lease.expires_at < self.clock():
                raise RequestError(f"serving lease {answer_id} expired")
            row = conn.execute(select(serving_requests).where(serving_requests.c.id == lease.request_id)).one()
            job = job_row(conn, row.job_id)
            answer = Answer.parse(body, ModelSpec.from_json(job.spec).classes, row.item_count)
            if answer.request != row.id or answer.input_sha256 != row.input_sha256:
                raise InputError(f"the answer is to another request, not request {row.id}")
            conn.execute(update(serving_answers).where(serving_answers.c.id == answer_id).values(
                status="answered", answer_sha256=answer.digest, answer=body,
                evidence=canonical_json(request.evidence()).decode()))
            state = self._decide(conn, job, row)
        self._notify()
        return state

    # -- verdicts -------------------------------------------------------------

    def _decide(self, conn: Connection, job: Any, row: Any) -> str:
        answered = conn.execute(select(serving_answers).where(serving_answers.c.request_id == row.id,
                                                              serving_answers.c.status == "answered")
                                .order_by(serving_answers.c.id)).all()
        if row.status == "answered":  # a late answer is judged against the request's answer
            self._judge(conn, job, row, row.answer_sha256)
            return "answered"
        digests = [a.answer_sha256 for a in answered]
        if job.redundancy == 1:
            if secrets.randbelow(1_000_000) < job.spot_check * 1_000_000:
                self._settle_request(conn, job, row, self._own_answer(job, row), "coordinator", "spot check")
            else:
                self._settle_request(conn, job, row, None, "workers", "", digests[0])
            return "answered"
        majority = job.redundancy // 2 + 1
        for digest in dict.fromkeys(digests):
            if digests.count(digest) >= majority:
                self._settle_request(conn, job, row, None, "workers", "", digest)
                return "answered"
        if len(digests) >= row.needed:  # no majority among all of them: the coordinator decides
            self._settle_request(conn, job, row, self._own_answer(job, row), "coordinator", "workers disagreed")
            return "answered"
        return "pending"

    def _settle_request(self, conn: Connection, job: Any, row: Any, mine: Answer | None, by: str, why: str,
                        digest: str | None = None) -> None:
        """Fix the request's answer (the coordinator's ``mine``, or the workers' ``digest``) and judge all."""
        if mine is not None:
            digest, body = mine.digest, mine.to_json()
        else:
            body = conn.execute(select(serving_answers.c.answer).where(
                serving_answers.c.request_id == row.id, serving_answers.c.answer_sha256 == digest).limit(1)).scalar_one()
        conn.execute(update(serving_requests).where(serving_requests.c.id == row.id).values(
            status="answered", answer_sha256=digest, answer=body, answered_by=by, answered_at=self.clock()))
        assert digest is not None
        self._judge(conn, job, row, digest, why)

    def _judge(self, conn: Connection, job: Any, row: Any, digest: str, why: str = "") -> None:
        for a in conn.execute(select(serving_answers).where(serving_answers.c.request_id == row.id,
                                                            serving_answers.c.status == "answered",
                                                            serving_answers.c.verdict.is_(None))).all():
            odd = a.answer_sha256 != digest
            conn.execute(update(serving_answers).where(serving_answers.c.id == a.id).values(
                verdict="odd" if odd else "agree"))
            if odd:
                self._slash(conn, job, row, a, digest, why)

    def _slash(self, conn: Connection, job: Any, row: Any, odd: Any, digest: str, why: str) -> None:
        request = conn.execute(select(serving_requests).where(serving_requests.c.id == row.id)).one()
        put = self.store.put
        agreeing = [json.loads(e) for e in conn.execute(select(serving_answers.c.evidence).where(
            serving_answers.c.request_id == row.id, serving_answers.c.answer_sha256 == digest)).scalars()]
        evidence = {"kind": "databright.compute.serving-mismatch", "job_id": job.id, "model_id": job.model_id,
                    "version": job.version, "checkpoint_sha256": job.checkpoint_sha256, "request": row.id,
                    "input_cid": str(put(request.input)), "input_sha256": row.input_sha256,
                    "accepted_sha256": digest, "accepted_cid": str(put(request.answer)),
                    "accepted_by": agreeing or "coordinator",
                    "submitted_sha256": odd.answer_sha256, "submitted_cid": str(put(odd.answer)),
                    "submission": json.loads(odd.evidence), "context": why or "majority",
                    "domain": {"chainId": self.domain.chain_id, "verifyingContract": self.domain.contract}}
        cid = str(self.store.put(canonical_json(evidence)))
        conn.execute(insert(serving_slashes).values(job_id=job.id, worker=odd.worker, answer_id=odd.id,
                                                    reason="answer differs from the accepted one", evidence_cid=cid))
        conn.execute(update(workers).where(workers.c.address == odd.worker).values(banned=True))

    # -- settlement -----------------------------------------------------------

    def settlement(self, job_id: int) -> Settlement:
        """What complete_job pays (the fee per agreed prediction) and slashes; writes the job's report."""
        return serving_settlement(self.engine, self.store, self.slash_wei, job_id)

    def mark_settled(self, job_id: int, tx: str) -> None:
        with self._tx() as conn:
            conn.execute(update(serving_jobs).where(serving_jobs.c.id == job_id).values(status="settled",
                                                                                        settle_tx=tx))
        self._notify()

    def status(self, job_id: int) -> dict[str, Any]:
        """A serving job's state and, per worker, predictions answered in agreement and answers found odd."""
        return serving_status(self.engine, job_id)
