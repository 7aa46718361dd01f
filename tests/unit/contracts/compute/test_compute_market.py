"""Every path of ComputeMarket: workers, coordinators, jobs, payments out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boa
import pytest

from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    COMPUTE_MARKET,
    DELAY,
    EVIDENCE,
    MEASUREMENT,
    MIN_STAKE,
    REPORT,
    SPEC,
    TRAINING_FEE,
    ZERO,
    add_coordinator,
    funded,
    register_worker,
    submit,
)

GREEDY = Path(__file__).resolve().parent / "greedy_receiver.vy"
BUDGET = 10**18
FEE = 10**15


def now() -> int:
    return int(boa.env.evm.patch.timestamp)


def complete(cm: Any, coordinator: str, job: int, payments: list[tuple[str, int, int]],
             slashes: list[tuple[str, int, str]] | None = None) -> None:
    with boa.env.prank(coordinator):
        cm.complete_job(job, payments, slashes or [], CHECKPOINT, REPORT)


@pytest.fixture
def job(compute_market: Any, submitter: str, dataset: int, coordinator: str, workers: list[str]) -> int:
    """An accepted job whose four workers charge FEE per task."""
    for w in workers:
        register_worker(compute_market, w, FEE)
    add_coordinator(compute_market, coordinator)
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    with boa.env.prank(coordinator):
        compute_market.accept_job(job_id)
    return job_id


# ---- deployment and governance ----

def test_constructor_checks(data_market: Any) -> None:
    with boa.reverts("computemarket: no data market"):
        boa.load(str(COMPUTE_MARKET), ZERO, MIN_STAKE, DELAY)
    with boa.reverts("computemarket: zero minimum stake"):
        boa.load(str(COMPUTE_MARKET), data_market.address, 0, DELAY)
    with boa.reverts("computemarket: bad unbonding delay"):
        boa.load(str(COMPUTE_MARKET), data_market.address, MIN_STAKE, 0)
    cm = boa.load(str(COMPUTE_MARKET), data_market.address, MIN_STAKE, DELAY)
    assert (cm.data_market(), cm.min_stake(), cm.unbonding_delay()) == (data_market.address, MIN_STAKE, DELAY)
    assert cm.owner() == boa.env.eoa


def test_ownership_is_two_step_and_cannot_be_renounced(compute_market: Any, stranger: str) -> None:
    owner = compute_market.owner()
    compute_market.transfer_ownership(stranger, sender=owner)
    assert compute_market.owner() == owner  # nothing changes until the new owner accepts
    assert compute_market.pending_owner() == stranger
    with boa.reverts("ownable_2step: caller is not the new owner"):
        compute_market.accept_ownership(sender=funded("cm-other"))
    compute_market.accept_ownership(sender=stranger)
    assert compute_market.owner() == stranger
    with boa.reverts("computemarket: not the owner"):
        compute_market.allow_measurement(MEASUREMENT, sender=owner)
    assert not hasattr(compute_market, "renounce_ownership")


def test_only_the_owner_governs_the_allow_list(compute_market: Any, stranger: str, coordinator: str) -> None:
    owner = compute_market.owner()
    with boa.reverts("computemarket: not the owner"):
        compute_market.allow_measurement(MEASUREMENT, sender=stranger)
    with boa.reverts("computemarket: no measurement"):
        compute_market.allow_measurement(b"\x00" * 32, sender=owner)
    compute_market.allow_measurement(MEASUREMENT, sender=owner)
    with boa.reverts("computemarket: measurement already allowed"):
        compute_market.allow_measurement(MEASUREMENT, sender=owner)
    with boa.reverts("computemarket: not the owner"):
        compute_market.register_coordinator(coordinator, MEASUREMENT, EVIDENCE, sender=stranger)
    with boa.reverts("computemarket: no coordinator"):
        compute_market.register_coordinator(ZERO, MEASUREMENT, EVIDENCE, sender=owner)
    with boa.reverts("computemarket: measurement not allowed"):
        compute_market.register_coordinator(coordinator, b"\x01" * 32, EVIDENCE, sender=owner)
    with boa.reverts("computemarket: no evidence"):
        compute_market.register_coordinator(coordinator, MEASUREMENT, "", sender=owner)
    compute_market.register_coordinator(coordinator, MEASUREMENT, EVIDENCE, sender=owner)
    assert compute_market.is_coordinator(coordinator)
    record = compute_market.coordinators(coordinator)
    assert (record.measurement, record.evidence_cid, record.registered_at) == (MEASUREMENT, EVIDENCE, now())
    with boa.reverts("computemarket: not the owner"):
        compute_market.revoke_measurement(MEASUREMENT, sender=stranger)
    compute_market.revoke_measurement(MEASUREMENT, sender=owner)
    assert not compute_market.is_coordinator(coordinator)  # revoking the measurement stops it at once
    with boa.reverts("computemarket: measurement not allowed"):
        compute_market.revoke_measurement(MEASUREMENT, sender=owner)
    compute_market.allow_measurement(MEASUREMENT, sender=owner)
    assert compute_market.is_coordinator(coordinator)
    with boa.reverts("computemarket: not the owner"):
        compute_market.remove_coordinator(coordinator, sender=stranger)
    compute_market.remove_coordinator(coordinator, sender=owner)
    assert [type(e).__name__ for e in compute_market.get_logs()] == ["CoordinatorRemoved"]
    assert not compute_market.is_coordinator(coordinator)
    with boa.reverts("computemarket: not a coordinator"):
        compute_market.remove_coordinator(coordinator, sender=owner)


# ---- workers ----

def test_register_worker(compute_market: Any, workers: list[str]) -> None:
    w = workers[0]
    with boa.reverts("computemarket: stake below the minimum"):
        compute_market.register_worker(FEE, value=MIN_STAKE - 1, sender=w)
    compute_market.register_worker(FEE, value=MIN_STAKE, sender=w)
    record = compute_market.workers(w)
    assert (record.stake, record.min_fee, record.unbonding_at, record.active) == (MIN_STAKE, FEE, 0, True)
    assert (record.tasks_paid, record.earned, record.slashed) == (0, 0, 0)
    with boa.reverts("computemarket: already registered"):
        compute_market.register_worker(FEE, value=MIN_STAKE, sender=w)
    compute_market.begin_unbonding(sender=w)
    with boa.reverts("computemarket: already registered"):  # unbonding stake is still bonded
        compute_market.register_worker(FEE, value=MIN_STAKE, sender=w)


def test_add_stake(compute_market: Any, workers: list[str]) -> None:
    w = workers[0]
    with boa.reverts("computemarket: not an active worker"):
        compute_market.add_stake(value=1, sender=w)
    register_worker(compute_market, w, FEE)
    with boa.reverts("computemarket: zero stake"):
        compute_market.add_stake(value=0, sender=w)
    compute_market.add_stake(value=5, sender=w)
    event = compute_market.get_logs()[-1]
    assert compute_market.workers(w).stake == MIN_STAKE + 5
    assert (event.worker, event.amount, event.stake) == (w, 5, MIN_STAKE + 5)
    compute_market.begin_unbonding(sender=w)
    with boa.reverts("computemarket: not an active worker"):
        compute_market.add_stake(value=1, sender=w)


def test_fee_cut_is_immediate_and_raise_waits_the_delay(compute_market: Any, workers: list[str]) -> None:
    w = workers[0]
    with boa.reverts("computemarket: not a registered worker"):
        compute_market.set_min_fee(1, sender=w)
    register_worker(compute_market, w, FEE)
    compute_market.set_min_fee(FEE // 2, sender=w)
    assert compute_market.workers(w).min_fee == FEE // 2
    compute_market.set_min_fee(3 * FEE, sender=w)
    event = compute_market.get_logs()[-1]
    assert (event.min_fee, event.effective_at) == (3 * FEE, now() + DELAY)
    assert compute_market.workers(w).min_fee == FEE // 2
    assert tuple(compute_market.pending_fee(w)) == (3 * FEE, now() + DELAY)
    boa.env.time_travel(seconds=DELAY)
    assert compute_market.workers(w).min_fee == 3 * FEE
    assert tuple(compute_market.pending_fee(w)) == (0, 0)
    # a later raise keeps the raise now in effect until it takes over
    compute_market.set_min_fee(4 * FEE, sender=w)
    assert compute_market.workers(w).min_fee == 3 * FEE
    # a cut cancels a pending raise
    compute_market.set_min_fee(2 * FEE, sender=w)
    assert compute_market.workers(w).min_fee == 2 * FEE
    assert tuple(compute_market.pending_fee(w)) == (0, 0)


def test_unbonding_and_withdrawing_stake(compute_market: Any, workers: list[str]) -> None:
    w = workers[0]
    with boa.reverts("computemarket: not an active worker"):
        compute_market.begin_unbonding(sender=w)
    with boa.reverts("computemarket: not unbonding"):
        compute_market.withdraw_stake(sender=w)
    register_worker(compute_market, w, FEE, stake=2 * MIN_STAKE)
    compute_market.begin_unbonding(sender=w)
    record = compute_market.workers(w)
    assert (record.active, record.unbonding_at) == (False, now() + DELAY)
    with boa.reverts("computemarket: not an active worker"):
        compute_market.begin_unbonding(sender=w)
    boa.env.time_travel(seconds=DELAY - 1)
    with boa.reverts("computemarket: unbonding delay running"):
        compute_market.withdraw_stake(sender=w)
    boa.env.time_travel(seconds=1)
    before = boa.env.get_balance(w)
    assert compute_market.withdraw_stake(sender=w) == 2 * MIN_STAKE
    assert boa.env.get_balance(w) == before + 2 * MIN_STAKE
    assert compute_market.workers(w).stake == 0
    with boa.reverts("computemarket: not unbonding"):
        compute_market.withdraw_stake(sender=w)
    register_worker(compute_market, w, 2 * FEE)  # free to come back
    assert compute_market.workers(w).active


# ---- jobs ----

def test_submit_job_pays_the_training_fee_in_the_same_transaction(
        compute_market: Any, data_market: Any, submitter: str, dataset: int, creator: str) -> None:
    held_before = data_market.withdrawable(dataset, creator)
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    assert job_id == 1 and compute_market.job_count() == 1
    assert data_market.withdrawable(dataset, creator) == held_before + TRAINING_FEE  # the only shareholder
    assert boa.env.get_balance(compute_market.address) == BUDGET
    assert compute_market.total_held() == BUDGET
    j = compute_market.get_job(job_id)
    assert (j.submitter, j.dataset_id, j.spec_cid, j.rounds, j.local_steps) == (submitter, dataset, SPEC, 3, 5)
    assert (j.redundancy, j.max_exposure_bps, j.budget, j.training_fee, j.status) == (1, 500, BUDGET,
                                                                                      TRAINING_FEE, 1)
    assert (j.submitted_at, j.coordinator, j.paid, j.refunded) == (now(), ZERO, 0, 0)


def test_submit_job_refuses_bad_terms(compute_market: Any, submitter: str, dataset: int) -> None:
    t = now()
    good = [dataset, SPEC, 3, 5, 1, 500, BUDGET, t + 100]
    cases = [
        (1, "", "computemarket: no spec"),
        (2, 0, "computemarket: no rounds"),
        (3, 0, "computemarket: no local steps"),
        (4, 2, "computemarket: redundancy must be 1 or 3"),
        (5, 0, "computemarket: bad exposure cap"),
        (5, 10_001, "computemarket: bad exposure cap"),
        (6, 0, "computemarket: zero budget"),
        (7, t, "computemarket: deadline passed"),
        (7, t + DELAY, "computemarket: deadline beyond the unbonding delay"),
    ]
    for index, value, reason in cases:
        args = list(good)
        args[index] = value
        with boa.reverts(reason):
            compute_market.submit_job(*args, value=BUDGET + TRAINING_FEE, sender=submitter)
    for wrong in (BUDGET, BUDGET + TRAINING_FEE + 1):
        with boa.reverts("computemarket: value is not budget plus training fee"):
            compute_market.submit_job(*good, value=wrong, sender=submitter)
    with boa.reverts("datamarket: unknown dataset"):
        compute_market.submit_job(dataset + 1, *good[1:], value=BUDGET, sender=submitter)
    args = list(good)
    args[4] = 3
    assert compute_market.submit_job(*args, value=BUDGET + TRAINING_FEE, sender=submitter) == 1


def test_free_dataset_takes_no_deposit(compute_market: Any, data_market: Any, submitter: str,
                                       creator: str) -> None:
    from tests.unit.contracts.compute._helpers import create_dataset

    free = create_dataset(data_market, creator, training_fee=0)
    job_id = submit(compute_market, submitter, free, BUDGET, fee=0)
    assert compute_market.get_job(job_id).training_fee == 0


def test_accept_job(compute_market: Any, submitter: str, dataset: int, coordinator: str,
                    stranger: str) -> None:
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    with boa.reverts("computemarket: not an allow-listed coordinator"):
        compute_market.accept_job(job_id, sender=stranger)
    add_coordinator(compute_market, coordinator)
    with boa.reverts("computemarket: unknown job"):
        compute_market.accept_job(job_id + 1, sender=coordinator)
    compute_market.accept_job(job_id, sender=coordinator)
    j = compute_market.get_job(job_id)
    assert (j.status, j.coordinator, j.accepted_at) == (2, coordinator, now())
    with boa.reverts("computemarket: job already accepted"):
        compute_market.accept_job(job_id, sender=coordinator)
    other = funded("cm-coordinator-2")
    add_coordinator(compute_market, other)
    with boa.reverts("computemarket: job taken"):
        compute_market.accept_job(job_id, sender=other)
    late = submit(compute_market, submitter, dataset, BUDGET, deadline=now() + 10)
    boa.env.time_travel(seconds=11)
    with boa.reverts("computemarket: job past its deadline"):
        compute_market.accept_job(late, sender=coordinator)


def test_a_job_can_be_taken_over_when_its_coordinator_loses_standing(
        compute_market: Any, job: int, coordinator: str, workers: list[str], submitter: str) -> None:
    other = funded("cm-coordinator-2")
    add_coordinator(compute_market, other, b"\x4e" * 32)
    with boa.reverts("computemarket: job taken"):
        compute_market.accept_job(job, sender=other)
    compute_market.revoke_measurement(MEASUREMENT, sender=compute_market.owner())
    with boa.reverts("computemarket: not an allow-listed coordinator"):
        complete(compute_market, coordinator, job, [])
    compute_market.accept_job(job, sender=other)
    add_coordinator(compute_market, coordinator)  # back on the list, but the job moved on
    with boa.reverts("computemarket: not the job's coordinator"):
        complete(compute_market, coordinator, job, [])
    complete(compute_market, other, job, [(workers[0], 2, FEE)])
    assert compute_market.get_job(job).coordinator == other


def test_complete_job_pays_slashes_refunds_and_records(
        compute_market: Any, job: int, coordinator: str, workers: list[str], submitter: str) -> None:
    a, b, cheat = workers[:3]
    complete(compute_market, coordinator, job, [(a, 3, FEE), (b, 2, 2 * FEE)], [(cheat, MIN_STAKE // 4, "bafkcheat")])
    logs = compute_market.get_logs()
    paid = 3 * FEE + 4 * FEE
    j = compute_market.get_job(job)
    assert (j.status, j.paid, j.refunded, j.compensation) == (3, paid, BUDGET - paid, MIN_STAKE // 4)
    assert (j.checkpoint_digest, j.report_cid) == (CHECKPOINT, REPORT)
    assert compute_market.earnings(a) == 3 * FEE and compute_market.earnings(b) == 4 * FEE
    assert compute_market.refunds(submitter) == BUDGET - paid + MIN_STAKE // 4
    ra, rc = compute_market.workers(a), compute_market.workers(cheat)
    assert (ra.tasks_paid, ra.earned) == (3, 3 * FEE)
    assert (rc.stake, rc.slashed) == (MIN_STAKE - MIN_STAKE // 4, MIN_STAKE // 4)
    assert compute_market.total_held() == 0
    assert [type(e).__name__ for e in logs] == ["WorkerPaid", "WorkerPaid", "WorkerSlashed", "JobCompleted"]
    slashed = logs[2]
    assert (slashed.job_id, slashed.worker, slashed.amount, slashed.evidence_cid) == (job, cheat, MIN_STAKE // 4,
                                                                                      "bafkcheat")
    # double completion
    with boa.reverts("computemarket: job not accepted"):
        complete(compute_market, coordinator, job, [(a, 3, FEE)])
    with boa.reverts("computemarket: job closed"):
        compute_market.expire_job(job)

    before = boa.env.get_balance(a)
    assert compute_market.withdraw_earnings(sender=a) == 3 * FEE
    assert boa.env.get_balance(a) == before + 3 * FEE
    with boa.reverts("computemarket: nothing to withdraw"):
        compute_market.withdraw_earnings(sender=a)
    before = boa.env.get_balance(submitter)
    assert compute_market.withdraw_refund(sender=submitter) == BUDGET - paid + MIN_STAKE // 4
    assert boa.env.get_balance(submitter) == before + BUDGET - paid + MIN_STAKE // 4
    with boa.reverts("computemarket: nothing to refund"):
        compute_market.withdraw_refund(sender=submitter)


def test_complete_job_refuses_bad_settlements(
        compute_market: Any, job: int, coordinator: str, workers: list[str], stranger: str) -> None:
    a = workers[0]
    cases: list[tuple[list[tuple[str, int, int]], list[tuple[str, int, str]], str]] = [
        ([(a, 0, FEE)], [], "computemarket: payment for no tasks"),
        ([(stranger, 1, FEE)], [], "computemarket: not a registered worker"),
        ([(a, 1, FEE - 1)], [], "computemarket: fee below the worker's minimum"),
        ([(a, BUDGET // FEE, FEE), (workers[1], 1, FEE)], [], "computemarket: payments above the budget"),
        ([(a, 1, BUDGET + 1)], [], "computemarket: payments above the budget"),
        ([], [(a, 0, "bafk")], "computemarket: zero slash"),
        ([], [(a, 1, "")], "computemarket: no evidence"),
        ([], [(stranger, 1, "bafk")], "computemarket: not a registered worker"),
        ([], [(a, MIN_STAKE + 1, "bafk")], "computemarket: slash above the stake"),
        ([], [(a, MIN_STAKE, "bafk"), (a, 1, "bafk")], "computemarket: slash above the stake"),
    ]
    for payments, slashes, reason in cases:
        with boa.reverts(reason):
            complete(compute_market, coordinator, job, payments, slashes)
    other = funded("cm-coordinator-3")
    add_coordinator(compute_market, other)
    with boa.reverts("computemarket: not the job's coordinator"):
        complete(compute_market, other, job, [])
    with boa.reverts("computemarket: no checkpoint"):
        compute_market.complete_job(job, [], [], b"\x00" * 32, REPORT, sender=coordinator)
    with boa.reverts("computemarket: no report"):
        compute_market.complete_job(job, [], [], CHECKPOINT, "", sender=coordinator)
    with boa.reverts("computemarket: unknown job"):
        compute_market.complete_job(job + 1, [], [], CHECKPOINT, REPORT, sender=coordinator)
    # the whole budget, to the wei, is payable
    complete(compute_market, coordinator, job, [(a, BUDGET // FEE, FEE)])
    assert compute_market.get_job(job).refunded == 0


def test_complete_job_needs_an_accepted_job_before_its_deadline(
        compute_market: Any, submitter: str, dataset: int, coordinator: str, workers: list[str]) -> None:
    add_coordinator(compute_market, coordinator)
    job_id = submit(compute_market, submitter, dataset, BUDGET, deadline=now() + 100)
    with boa.reverts("computemarket: job not accepted"):
        complete(compute_market, coordinator, job_id, [])
    compute_market.accept_job(job_id, sender=coordinator)
    boa.env.time_travel(seconds=101)
    with boa.reverts("computemarket: job past its deadline"):
        complete(compute_market, coordinator, job_id, [])


def test_a_fee_raise_mid_job_does_not_block_completion(
        compute_market: Any, job: int, coordinator: str, workers: list[str]) -> None:
    a = workers[0]
    compute_market.set_min_fee(100 * FEE, sender=a)
    boa.env.time_travel(seconds=DELAY // 2 - 1)  # the last second before the job's deadline
    complete(compute_market, coordinator, job, [(a, 1, FEE)])


def test_a_fee_raise_in_effect_binds_later_jobs(
        compute_market: Any, submitter: str, dataset: int, coordinator: str, workers: list[str]) -> None:
    a = workers[0]
    register_worker(compute_market, a, FEE)
    add_coordinator(compute_market, coordinator)
    compute_market.set_min_fee(2 * FEE, sender=a)
    boa.env.time_travel(seconds=DELAY)
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    compute_market.accept_job(job_id, sender=coordinator)
    with boa.reverts("computemarket: fee below the worker's minimum"):
        complete(compute_market, coordinator, job_id, [(a, 1, FEE)])
    complete(compute_market, coordinator, job_id, [(a, 1, 2 * FEE)])


def test_unbonding_does_not_dodge_a_slash(
        compute_market: Any, job: int, coordinator: str, workers: list[str]) -> None:
    cheat = workers[2]
    compute_market.begin_unbonding(sender=cheat)
    boa.env.time_travel(seconds=DELAY // 2 - 1)
    with boa.reverts("computemarket: unbonding delay running"):  # still bonded at the job's last second
        compute_market.withdraw_stake(sender=cheat)
    complete(compute_market, coordinator, job, [(workers[0], 1, FEE)], [(cheat, MIN_STAKE, "bafkcheat")])
    boa.env.time_travel(seconds=DELAY)
    assert compute_market.withdraw_stake(sender=cheat) == 0


def test_a_worker_gone_before_the_job_is_not_a_party_to_it(
        compute_market: Any, submitter: str, dataset: int, coordinator: str, workers: list[str]) -> None:
    gone = workers[3]
    register_worker(compute_market, gone, FEE)
    add_coordinator(compute_market, coordinator)
    compute_market.begin_unbonding(sender=gone)
    boa.env.time_travel(seconds=1)
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    compute_market.accept_job(job_id, sender=coordinator)
    with boa.reverts("computemarket: worker left before the job"):
        complete(compute_market, coordinator, job_id, [(gone, 1, FEE)])
    with boa.reverts("computemarket: worker left before the job"):
        complete(compute_market, coordinator, job_id, [], [(gone, 1, "bafk")])


def test_expire_job(compute_market: Any, submitter: str, dataset: int, coordinator: str, stranger: str) -> None:
    add_coordinator(compute_market, coordinator)
    opened = submit(compute_market, submitter, dataset, BUDGET, deadline=now() + 100)
    taken = submit(compute_market, submitter, dataset, 2 * BUDGET, deadline=now() + 100)
    compute_market.accept_job(taken, sender=coordinator)
    with boa.reverts("computemarket: unknown job"):
        compute_market.expire_job(99, sender=stranger)
    boa.env.time_travel(seconds=100)
    with boa.reverts("computemarket: deadline not passed"):
        compute_market.expire_job(opened, sender=stranger)
    boa.env.time_travel(seconds=1)
    compute_market.expire_job(opened, sender=stranger)
    compute_market.expire_job(taken, sender=stranger)
    event = compute_market.get_logs()[-1]
    assert (event.job_id, event.refunded) == (taken, 2 * BUDGET)
    with boa.reverts("computemarket: job closed"):
        compute_market.expire_job(taken, sender=stranger)
    with boa.reverts("computemarket: job closed"):
        compute_market.accept_job(opened, sender=coordinator)
    assert compute_market.get_job(taken).status == 4
    assert compute_market.refunds(submitter) == 3 * BUDGET
    assert compute_market.total_held() == 0


def test_a_receiver_that_reenters_gets_nothing_twice(
        compute_market: Any, submitter: str, dataset: int, coordinator: str) -> None:
    greedy = boa.load(str(GREEDY), compute_market.address)
    boa.env.set_balance(greedy.address, 10 * MIN_STAKE)
    greedy.register(FEE, MIN_STAKE)
    add_coordinator(compute_market, coordinator)
    job_id = submit(compute_market, submitter, dataset, BUDGET)
    compute_market.accept_job(job_id, sender=coordinator)
    complete(compute_market, coordinator, job_id, [(greedy.address, 2, FEE)])
    with boa.reverts():  # the reentrant call fails, so the whole withdrawal does
        greedy.withdraw()
    assert compute_market.earnings(greedy.address) == 2 * FEE
    greedy.set_greedy(False)
    greedy.withdraw()
    assert compute_market.earnings(greedy.address) == 0
    assert boa.env.get_balance(greedy.address) == 9 * MIN_STAKE + 2 * FEE


def test_get_job_of_unknown_job(compute_market: Any) -> None:
    with boa.reverts("computemarket: unknown job"):
        compute_market.get_job(1)
