"""Serving jobs between ComputeMarket, the coordinator and a model's prediction server.

:class:`ServingLink` is the coordinator's side of the chain: it accepts open
serving jobs, resolves the model version each serves from ModelMarket (spec and
checkpoint fetched by the digests registered on chain, and checked) and settles
a job with ``complete_job``: each worker paid the job's fee per prediction it
answered in agreement, each odd one out slashed with its evidence. Like
training settlements it is idempotent: a job the chain already shows completed
is only marked settled.

:class:`ServingClient` is the owner's side: the backend a prediction server
uses instead of running the model itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import httpx
import numpy as np
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray
from sqlalchemy import select

from databright.chain.computemarket import ComputeMarket, JobStatus, Payment, Slash
from databright.chain.modelmarket import ModelMarket
from databright.compute._requests import RequestSigner
from databright.compute._serving import ServingDesk, ServingJob
from databright.compute._serving_answers import Answer, frame_items
from databright.compute._serving_schema import serving_jobs
from databright.compute._worker import signed_call
from databright.errors import ComputeError, DataBrightError, InputError
from databright.ml import ModelSpec
from databright.storage import cid_from_digest

__all__ = ["ServingClient", "ServingLink"]


class ServingLink:
    def __init__(self, desk: ServingDesk, market: ComputeMarket, models: ModelMarket, account: LocalAccount,
                 spot_check: float = 0.1) -> None:
        self.desk = desk
        self.market = market
        self.models = models
        self.account = account
        self.spot_check = spot_check

    def poll(self) -> list[int]:
        """Accept and start serving new serving jobs; returns their ids."""
        with self.desk.engine.connect() as conn:
            known = set(conn.execute(select(serving_jobs.c.id)).scalars())
        started = []
        for job_id in range(1, self.market.job_count() + 1):
            if job_id in known:
                continue
            job = self.market.job(job_id)
            if not job.serving:
                continue
            if job.status == JobStatus.OPEN:
                self.market.accept_job(self.account, job_id)
            elif not (job.status == JobStatus.ACCEPTED and job.coordinator == self.account.address):
                continue
            terms = self.market.serving(job_id)
            version = self.models.version(terms.model_id, terms.version)
            store = self.desk.store
            try:
                spec = ModelSpec.from_json(store.get(str(cid_from_digest(version.spec_digest))))
            except DataBrightError as exc:
                raise InputError(f"serving job {job_id}: model {terms.model_id}'s spec: {exc}") from exc
            checkpoint = str(cid_from_digest(version.checkpoint_digest))
            self.desk.add_job(ServingJob(job_id, terms.model_id, terms.version, job.submitter, spec, checkpoint,
                                         version.checkpoint_digest.hex(), job.redundancy, terms.fee_per_prediction,
                                         job.budget, self.spot_check))
            started.append(job_id)
        return started

    def settle(self, job_id: int) -> str:
        """Complete a serving job on chain; returns the transaction hash."""
        if self.market.job(job_id).status == JobStatus.COMPLETED:
            self.desk.mark_settled(job_id, "already completed on chain")
            return "already completed on chain"
        s = self.desk.settlement(job_id)
        payments = [Payment(p.worker, p.tasks, p.fee_per_task) for p in s.payments
                    if self.market.worker(p.worker).registered]  # only staked workers can be paid
        slashes = [Slash(x.worker, min(x.amount, self.market.worker(x.worker).stake), x.evidence_cid)
                   for x in s.slashes if self.market.worker(x.worker).stake > 0]
        receipt = self.market.complete_job(self.account, job_id, payments, slashes,
                                           bytes.fromhex(s.checkpoint_sha256), s.report_cid)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.desk.mark_settled(job_id, tx)
        return tx


class ServingClient:
    """A prediction server's backend: each request's items answered by a serving job's workers."""

    def __init__(self, client: httpx.Client, signer: RequestSigner, job_id: int, classes: Sequence[str]) -> None:
        self.client = client
        self.signer = signer
        self.job_id = job_id
        self.classes = tuple(classes)
        self.last: dict[str, object] = {}

    def __call__(self, items: Sequence[bytes]) -> NDArray[np.float32]:
        """Class probabilities for ``items``, as the workers (or the coordinator) agreed them."""
        body = frame_items(items)
        out = signed_call(self.client, self.signer, "POST", f"/v1/serving/jobs/{self.job_id}/predict", body).json()
        answer = Answer.parse(json.dumps(out["answer"]).encode(), self.classes, len(items))
        if answer.input_sha256 != hashlib.sha256(body).hexdigest():
            raise ComputeError("the coordinator answered another request")
        self.last = {"request": out["request"], "answered_by": out["answered_by"], "answer_sha256": answer.digest}
        return answer.probabilities
