"""Wiring a coordinator to ComputeMarket: take open jobs, settle finished ones.

The chain is the source of truth for jobs and their escrow. :class:`MarketLink`
polls ComputeMarket for open jobs, accepts each (the contract lets only an
allow-listed coordinator do so), plans it from its spec blob and the dataset's
accepted items, and calls ``complete_job`` once the job's rounds are done.
Settlement is idempotent across crashes: before sending ``complete_job`` the
job's on-chain status is read, and a job the chain already shows completed is
only marked settled, so no task is ever paid twice.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from databright.chain.computemarket import ComputeMarket, JobStatus, Payment, Slash
from databright.compute._coordinator import Coordinator
from databright.compute._jobs import JobConfig
from databright.compute._jobspec import parse_job_document
from databright.compute._schema import jobs

__all__ = ["DatasetItems", "MarketLink"]

#: ``dataset_id -> (items as (CID, label), validation manifest CID or None)``
DatasetItems = Callable[[int], tuple[list[tuple[str, str]], str | None]]


class MarketLink:
    def __init__(self, coordinator: Coordinator, market: ComputeMarket, account: LocalAccount,
                 dataset_items: DatasetItems) -> None:
        self.coordinator = coordinator
        self.market = market
        self.account = account
        self.dataset_items = dataset_items

    def poll(self) -> None:
        """Accept and plan new open jobs, then settle finished ones."""
        with self.coordinator.engine.connect() as conn:
            known = set(conn.execute(select(jobs.c.id)).scalars())
        for job_id in range(1, self.market.job_count() + 1):
            if job_id in known:
                continue
            job = self.market.job(job_id)
            if job.serving:  # served by ServingLink, not trained
                continue
            if job.status == JobStatus.OPEN:
                self.market.accept_job(self.account, job_id)
            elif not (job.status == JobStatus.ACCEPTED and job.coordinator == self.account.address):
                continue
            items, validation = self.dataset_items(job.dataset_id)
            spec, settings = parse_job_document(self.coordinator.store.get(job.spec_cid), job.redundancy)
            self.coordinator.add_job(JobConfig(job_id, job.dataset_id, spec, job.rounds, job.local_steps,
                                               job.redundancy, job.max_exposure_bps, job.budget,
                                               settings=settings), items, validation)
        self.settle()

    def settle(self) -> None:
        with self.coordinator.engine.connect() as conn:
            done = list(conn.execute(select(jobs.c.id).where(jobs.c.status == "done")).scalars())
        for job_id in done:
            if self.market.job(job_id).status == JobStatus.COMPLETED:
                self.coordinator.mark_settled(job_id, "already completed on chain")
                continue
            s = self.coordinator.settlement(job_id)
            payments = []
            for p in s.payments:
                worker = self.market.worker(p.worker)
                if worker.registered:  # only staked workers can be paid
                    payments.append(Payment(p.worker, p.tasks, max(p.fee_per_task, worker.min_fee)))
            slashes = [Slash(x.worker, min(x.amount, self.market.worker(x.worker).stake), x.evidence_cid)
                       for x in s.slashes if self.market.worker(x.worker).stake > 0]
            receipt = self.market.complete_job(self.account, job_id, payments, slashes,
                                               bytes.fromhex(s.checkpoint_sha256), s.report_cid)
            self.coordinator.mark_settled(job_id, "0x" + bytes(receipt["transactionHash"]).hex())
