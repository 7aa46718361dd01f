"""Serving jobs in ComputeMarket: a model's owner escrows a budget for workers
to answer its predictions, settled like a training job at a fixed fee per
prediction."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    DELAY,
    EVIDENCE,
    MIN_STAKE,
    REPORT,
    TRAINING_FEE,
    ZERO,
    add_coordinator,
    create_dataset,
    deploy_markets,
    deploy_with_models,
    funded,
    register_model,
    register_worker,
    submit_serving,
)

BUDGET = 10**17
FEE = 10**13  # per prediction


@pytest.fixture(scope="module")
def serving_markets() -> tuple[Any, Any, Any]:
    return deploy_with_models()


@pytest.fixture(scope="module")
def owner(serving_markets: tuple[Any, Any, Any]) -> tuple[str, int]:
    """A model owner and their model on a dataset with a training fee."""
    data_market, _, model_market = serving_markets
    creator, owner = funded("sv-creator"), funded("sv-owner")
    dataset = create_dataset(data_market, creator, training_fee=TRAINING_FEE)
    return owner, register_model(model_market, owner, dataset)


def now() -> int:
    return int(boa.env.evm.patch.timestamp)


def test_model_market_is_set_once_by_the_owner() -> None:
    _, cm = deploy_markets()
    stranger = funded("sv-stranger")
    with boa.env.prank(stranger), boa.reverts("computemarket: not the owner"):
        cm.set_model_market(stranger)
    with boa.env.prank(cm.owner()), boa.reverts("computemarket: no model market"):
        cm.set_model_market(ZERO)
    with boa.env.prank(stranger), boa.reverts("computemarket: no model market"):
        cm.submit_serving(1, FEE, 3, BUDGET, now() + 100, value=BUDGET)
    with boa.env.prank(cm.owner()):
        cm.set_model_market(stranger)
    assert cm.model_market() == stranger
    with boa.env.prank(cm.owner()), boa.reverts("computemarket: model market already set"):
        cm.set_model_market(cm.owner())


def test_submit_serving_checks(serving_markets: tuple[Any, Any, Any], owner: tuple[str, int]) -> None:
    _, cm, _ = serving_markets
    who, model = owner
    deadline = now() + DELAY // 2
    with boa.env.prank(who):
        with boa.reverts("computemarket: zero fee per prediction"):
            cm.submit_serving(model, 0, 3, BUDGET, deadline, value=BUDGET)
        with boa.reverts("computemarket: redundancy must be 1 or 3"):
            cm.submit_serving(model, FEE, 2, BUDGET, deadline, value=BUDGET)
        with boa.reverts("computemarket: zero budget"):
            cm.submit_serving(model, FEE, 3, 0, deadline, value=0)
        with boa.reverts("computemarket: value is not the budget"):
            cm.submit_serving(model, FEE, 3, BUDGET, deadline, value=BUDGET + 1)
        with boa.reverts("computemarket: deadline passed"):
            cm.submit_serving(model, FEE, 3, BUDGET, now(), value=BUDGET)
        with boa.reverts("computemarket: deadline beyond the unbonding delay"):
            cm.submit_serving(model, FEE, 3, BUDGET, now() + DELAY, value=BUDGET)
        with boa.reverts("modelmarket: unknown model"):
            cm.submit_serving(model + 7, FEE, 3, BUDGET, deadline, value=BUDGET)
    with boa.env.prank(funded("sv-not-owner")), boa.reverts("computemarket: not the model's owner"):
        cm.submit_serving(model, FEE, 3, BUDGET, deadline, value=BUDGET)


def test_a_serving_job_is_paid_per_prediction_and_slashes(serving_markets: tuple[Any, Any, Any],
                                                           owner: tuple[str, int]) -> None:
    data_market, cm, _ = serving_markets
    who, model = owner
    coordinator = funded("sv-coordinator")
    workers = [funded(f"sv-worker-{i}") for i in range(4)]
    for w in workers:
        register_worker(cm, w, FEE)
    add_coordinator(cm, coordinator)
    held, balance = cm.total_held(), boa.env.get_balance(who)
    job = submit_serving(cm, who, model, BUDGET, FEE)
    assert boa.env.get_balance(who) == balance - BUDGET  # no training fee
    assert cm.total_held() == held + BUDGET
    terms = cm.get_serving(job)
    assert (terms.model_id, terms.version, terms.fee_per_prediction) == (model, 1, FEE)
    record = cm.get_job(job)
    assert (record.rounds, record.redundancy, record.budget, record.training_fee) == (0, 3, BUDGET, 0)
    assert record.dataset_id == 1 and record.submitter == who
    with boa.env.prank(coordinator):
        cm.accept_job(job)
        with boa.reverts("computemarket: fee is not the serving fee"):
            cm.complete_job(job, [(workers[0], 5, FEE + 1)], [], CHECKPOINT, REPORT)
        cm.complete_job(job, [(workers[0], 5, FEE), (workers[1], 5, FEE), (workers[2], 4, FEE)],
                        [(workers[3], MIN_STAKE // 2, EVIDENCE)], CHECKPOINT, REPORT)
    done = cm.get_job(job)
    assert (done.status, done.paid, done.refunded, done.compensation) == (3, 14 * FEE, BUDGET - 14 * FEE,
                                                                           MIN_STAKE // 2)
    assert cm.earnings(workers[0]) == 5 * FEE and cm.workers(workers[3]).slashed == MIN_STAKE // 2
    assert cm.refunds(who) == BUDGET - 14 * FEE + MIN_STAKE // 2
    assert cm.total_held() == held


def test_a_training_job_is_not_a_serving_job(serving_markets: tuple[Any, Any, Any],
                                            owner: tuple[str, int]) -> None:
    _, cm, _ = serving_markets
    with boa.reverts("computemarket: unknown job"):
        cm.get_serving(cm.job_count() + 1)
    with boa.env.prank(owner[0]):
        job = cm.submit_job(1, "bafkreispec", 1, 1, 1, 500, 1, now() + 100, value=1 + TRAINING_FEE)
    with boa.reverts("computemarket: not a serving job"):
        cm.get_serving(job)


def test_an_unserved_job_expires_to_its_owner(serving_markets: tuple[Any, Any, Any], owner: tuple[str, int]) -> None:
    _, cm, _ = serving_markets
    who, model = owner
    before = cm.refunds(who)
    job = submit_serving(cm, who, model, BUDGET, FEE, redundancy=1, deadline=now() + 10)
    boa.env.time_travel(seconds=11)
    cm.expire_job(job)
    assert cm.refunds(who) == before + BUDGET and cm.get_job(job).status == 4
