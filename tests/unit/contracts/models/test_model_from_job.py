"""Registering the model a ComputeMarket job trained: the training fee is paid once, by the job."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    COMPUTE_MARKET,
    DELAY,
    MIN_STAKE,
    REPORT,
    TRAINING_FEE,
    ZERO,
    add_coordinator,
    funded,
    register_worker,
    submit,
)
from tests.unit.contracts.models._helpers import CHALLENGE, DATA_MARKET, MODEL_MARKET, PRICE, create_dataset

SPEC_DIGEST, REPORT_DIGEST = b"\x61" * 32, b"\x63" * 32
BUDGET = 10**17
TASK_FEE = 10**15


class Markets:
    """DataMarket, ComputeMarket and a ModelMarket linked to it, with a dataset, a coordinator and a worker."""

    def __init__(self) -> None:
        self.data = boa.load(str(DATA_MARKET))
        self.compute = boa.load(str(COMPUTE_MARKET), self.data.address, MIN_STAKE, DELAY)
        self.models = boa.load(str(MODEL_MARKET), self.data.address, CHALLENGE)
        self.models.link_compute_market(self.compute.address)
        self.creator, self.submitter = funded("mj-creator"), funded("mj-submitter")
        self.coordinator, self.worker = funded("mj-coordinator"), funded("mj-worker")
        self.dataset = create_dataset(self.data, self.creator, training_fee=TRAINING_FEE)
        self.other_dataset = create_dataset(self.data, self.creator, training_fee=TRAINING_FEE)
        register_worker(self.compute, self.worker, TASK_FEE)
        add_coordinator(self.compute, self.coordinator)

    def job(self, submitter: str | None = None, dataset: int | None = None, complete: bool = True) -> int:
        job_id = submit(self.compute, submitter or self.submitter, self.dataset if dataset is None else dataset,
                        BUDGET)
        with boa.env.prank(self.coordinator):
            self.compute.accept_job(job_id)
            if complete:
                self.compute.complete_job(job_id, [(self.worker, 3, TASK_FEE)], [], CHECKPOINT, REPORT)
        return job_id

    def register(self, job_id: int, sender: str | None = None, dataset: int | None = None,
                 checkpoint: bytes = CHECKPOINT) -> int:
        with boa.env.prank(sender or self.submitter):
            model_id: int = self.models.register_from_job(
                job_id, self.dataset if dataset is None else dataset, SPEC_DIGEST, checkpoint, REPORT_DIGEST,
                900_000, PRICE, 1000)
        return model_id


@pytest.fixture(scope="module")
def m() -> Markets:
    return Markets()


def test_the_fee_is_paid_once_by_the_job(m: Markets) -> None:
    before = m.data.revenue_total(m.dataset)
    job_id = m.job()
    assert m.data.revenue_total(m.dataset) == before + TRAINING_FEE
    balance = boa.env.get_balance(m.submitter)
    model_id = m.register(job_id)
    registered, trained, _ = m.models.get_logs()  # the logs of the last call: register_from_job's
    assert (type(registered).__name__, registered.training_fee) == ("ModelRegistered", 0)
    assert (trained.model_id, trained.job_id, trained.training_fee) == (model_id, job_id, TRAINING_FEE)
    assert m.data.revenue_total(m.dataset) == before + TRAINING_FEE  # registering paid nothing more
    assert boa.env.get_balance(m.submitter) == balance
    assert m.models.job_model(job_id) == model_id
    model = m.models.get_model(model_id)
    assert (model.owner, model.dataset_id, model.price, model.royalty_bps, model.version_count) == (
        m.submitter, m.dataset, PRICE, 1000, 1)
    version = m.models.get_version(model_id, 1)
    assert (version.spec_digest, version.checkpoint_digest, version.report_digest) == (
        SPEC_DIGEST, CHECKPOINT, REPORT_DIGEST)


def test_a_job_registers_one_model(m: Markets) -> None:
    job_id = m.job()
    m.register(job_id)
    with boa.reverts("modelmarket: job already registered"):
        m.register(job_id)


def test_refuses_a_job_not_completed(m: Markets) -> None:
    job_id = m.job(complete=False)
    with boa.reverts("modelmarket: job not completed"):
        m.register(job_id)


def test_refuses_an_expired_job(m: Markets) -> None:
    job_id = submit(m.compute, m.submitter, m.dataset, BUDGET)
    boa.env.time_travel(seconds=DELAY)
    m.compute.expire_job(job_id)
    with boa.reverts("modelmarket: job not completed"):
        m.register(job_id)


def test_refuses_an_unknown_job(m: Markets) -> None:
    with boa.reverts("computemarket: unknown job"):
        m.register(m.compute.job_count() + 1)


def test_refuses_another_submitter(m: Markets) -> None:
    job_id = m.job()
    with boa.reverts("modelmarket: not the job's submitter"):
        m.register(job_id, sender=funded("mj-stranger"))


def test_refuses_another_dataset(m: Markets) -> None:
    job_id = m.job()
    with boa.reverts("modelmarket: job trained on another dataset"):
        m.register(job_id, dataset=m.other_dataset)


def test_refuses_another_checkpoint(m: Markets) -> None:
    job_id = m.job()
    with boa.reverts("modelmarket: not the job's checkpoint"):
        m.register(job_id, checkpoint=b"\xc1" * 32)


def test_refuses_value(m: Markets) -> None:
    job_id = m.job()
    with boa.env.prank(m.submitter), boa.reverts():
        m.models.register_from_job(job_id, m.dataset, SPEC_DIGEST, CHECKPOINT, REPORT_DIGEST, 900_000, PRICE,
                                   1000, value=TRAINING_FEE)


def test_the_royalty_rules_still_hold(m: Markets) -> None:
    job_id = m.job()
    with boa.env.prank(m.submitter), boa.reverts("modelmarket: royalty above 100%"):
        m.models.register_from_job(job_id, m.dataset, SPEC_DIGEST, CHECKPOINT, REPORT_DIGEST, 900_000, PRICE,
                                   10_001)


def test_an_unlinked_market_refuses(m: Markets) -> None:
    unlinked = boa.load(str(MODEL_MARKET), m.data.address, CHALLENGE)
    assert unlinked.compute_market() == ZERO
    with boa.env.prank(m.submitter), boa.reverts("modelmarket: no compute market"):
        unlinked.register_from_job(1, m.dataset, SPEC_DIGEST, CHECKPOINT, REPORT_DIGEST, 900_000, PRICE, 1000)


def test_only_the_deployer_links_once_a_market_of_the_same_data_market(m: Markets) -> None:
    deployer = funded("mj-deployer")
    with boa.env.prank(deployer):
        models = boa.load(str(MODEL_MARKET), m.data.address, CHALLENGE)
    assert models.deployer() == deployer
    with boa.env.prank(funded("mj-other")), boa.reverts("modelmarket: not the deployer"):
        models.link_compute_market(m.compute.address)
    foreign = boa.load(str(COMPUTE_MARKET), boa.load(str(DATA_MARKET)).address, MIN_STAKE, DELAY)
    with boa.env.prank(deployer):
        with boa.reverts("modelmarket: no compute market"):
            models.link_compute_market(ZERO)
        with boa.reverts("modelmarket: compute market pays another data market"):
            models.link_compute_market(foreign.address)
        models.link_compute_market(m.compute.address)
        with boa.reverts("modelmarket: compute market already linked"):
            models.link_compute_market(m.compute.address)
    assert models.compute_market() == m.compute.address
