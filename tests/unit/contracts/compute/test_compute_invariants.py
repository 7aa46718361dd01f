"""Stateful property tests of ComputeMarket's money.

Random sequences of worker registrations, stake, fee changes (cuts and
raises), unbonding and withdrawals, job submissions, acceptances by
coordinators on and off the allow-list, completions with random payments
and slashes (valid or not), expiries, measurement revocations and moves of
the clock run against the real DataMarket, while a Python model predicts
which calls must succeed. After each step: for every job and in total,
budget = paid + refunded + held; the contract holds exactly the stakes, the
credited earnings and refunds and the held budgets; no payment was below the
payee's minimum fee in effect; every slashed wei left a stake and reached a
submitter; every job was accepted and completed by an allow-listed
coordinator. Serving jobs (a model's owner paying workers per prediction)
share the jobs' escrow and lifecycle: only the model's owner submits one, no
training fee is paid, and every payment is exactly its fee per prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.unit.contracts.compute._helpers import (
    CHECKPOINT,
    COMPUTE_MARKET,
    DATA_MARKET,
    EVIDENCE,
    MEASUREMENT,
    MODEL_MARKET,
    REPORT,
    SPEC,
    create_dataset,
    funded,
)

_DATA_MARKET = boa.load_partial(str(DATA_MARKET))
_COMPUTE_MARKET = boa.load_partial(str(COMPUTE_MARKET))
_MODEL_MARKET = boa.load_partial(str(MODEL_MARKET))
MIN_STAKE = 1000
DELAY = 1000
TRAINING_FEE = 7
WORKERS = [funded(f"inv-worker-{i}", 10**24) for i in range(4)]
SUBMITTERS = [funded(f"inv-submitter-{i}", 10**24) for i in range(2)]
# the first is allow-listed, the second never is, the third's measurement is revoked now and then
COORDINATORS = [funded(f"inv-coordinator-{i}", 10**24) for i in range(3)]
ROTATING = b"\x4e" * 32
worker_ix = st.integers(min_value=0, max_value=len(WORKERS) - 1)
fees = st.integers(min_value=0, max_value=50)
OPEN, ACCEPTED, COMPLETED, EXPIRED = 1, 2, 3, 4


@dataclass
class TrackedWorker:
    stake: int = 0
    min_fee: int = 0
    pending: tuple[int, int] = (0, 0)
    active: bool = False
    unbonding_at: int = 0
    slashed: int = 0

    def fee_at(self, t: int) -> int:
        fee, at = self.pending
        return fee if at and t >= at else self.min_fee

    def party_to(self, submitted_at: int) -> bool:
        return self.active or (self.unbonding_at != 0 and self.unbonding_at - DELAY >= submitted_at)


@dataclass
class TrackedJob:
    submitter: int
    budget: int
    deadline: int
    submitted_at: int
    status: int = OPEN
    coordinator: int = -1
    paid: int = 0
    refunded: int = 0
    compensation: int = 0
    payments: list[tuple[int, int]] = field(default_factory=list)  # (fee per task, min fee then)
    serving_fee: int | None = None  # a serving job's fee per prediction


class ComputeMachine(RuleBasedStateMachine):
    @initialize(initial_fees=st.lists(fees, min_size=len(WORKERS), max_size=len(WORKERS)))
    def deploy(self, initial_fees: list[int]) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.data_market = _DATA_MARKET.deploy()
        self.cm = _COMPUTE_MARKET.deploy(self.data_market.address, MIN_STAKE, DELAY)
        self.dataset = create_dataset(self.data_market, funded("inv-creator", 10**24), training_fee=TRAINING_FEE)
        self.model_market = _MODEL_MARKET.deploy(self.data_market.address, 3600)
        with boa.env.prank(SUBMITTERS[0]):  # the first submitter owns a model, the second does not
            self.model = self.model_market.register(self.dataset, b"\x51" * 32, b"\x52" * 32, b"\x53" * 32,
                                                    1, 1, 0, value=TRAINING_FEE)
        owner = self.cm.owner()
        with boa.env.prank(owner):
            self.cm.allow_measurement(MEASUREMENT)
            self.cm.allow_measurement(ROTATING)
            self.cm.register_coordinator(COORDINATORS[0], MEASUREMENT, EVIDENCE)
            self.cm.register_coordinator(COORDINATORS[2], ROTATING, EVIDENCE)
            self.cm.set_model_market(self.model_market.address)
        self.rotating_allowed = True
        self.workers = [TrackedWorker() for _ in WORKERS]
        self.jobs: list[TrackedJob] = []
        self.earnings = [0] * len(WORKERS)
        self.refunds = [0] * len(SUBMITTERS)
        self.fees_paid = TRAINING_FEE  # the model's registration
        for w, fee in enumerate(initial_fees):  # a market with workers from the start
            self.register(w, fee, 0)

    def teardown(self) -> None:
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    def _now(self) -> int:
        return int(boa.env.evm.patch.timestamp)

    def _allowed(self, c: int) -> bool:
        return c == 0 or (c == 2 and self.rotating_allowed)

    # ---- workers ----

    @rule(w=worker_ix, fee=fees, extra=st.integers(min_value=-1, max_value=500))
    def register(self, w: int, fee: int, extra: int) -> None:
        tracked = self.workers[w]
        stake = MIN_STAKE + extra
        with boa.env.prank(WORKERS[w]):
            if tracked.active or tracked.unbonding_at or extra < 0:
                with boa.reverts():
                    self.cm.register_worker(fee, value=stake)
                return
            self.cm.register_worker(fee, value=stake)
        tracked.stake, tracked.min_fee, tracked.pending, tracked.active = stake, fee, (0, 0), True

    @rule(w=worker_ix, amount=st.integers(min_value=1, max_value=500))
    def add_stake(self, w: int, amount: int) -> None:
        with boa.env.prank(WORKERS[w]):
            if not self.workers[w].active:
                with boa.reverts("computemarket: not an active worker"):
                    self.cm.add_stake(value=amount)
                return
            self.cm.add_stake(value=amount)
        self.workers[w].stake += amount

    @rule(w=worker_ix, fee=fees)
    def set_fee(self, w: int, fee: int) -> None:
        tracked = self.workers[w]
        with boa.env.prank(WORKERS[w]):
            if not (tracked.active or tracked.unbonding_at):
                with boa.reverts("computemarket: not a registered worker"):
                    self.cm.set_min_fee(fee)
                return
            self.cm.set_min_fee(fee)
        now = self._now()
        current = tracked.fee_at(now)
        if fee <= current:
            tracked.min_fee, tracked.pending = fee, (0, 0)
        else:
            tracked.min_fee, tracked.pending = current, (fee, now + DELAY)

    @rule(w=worker_ix)
    def unbond(self, w: int) -> None:
        tracked = self.workers[w]
        with boa.env.prank(WORKERS[w]):
            if not tracked.active:
                with boa.reverts("computemarket: not an active worker"):
                    self.cm.begin_unbonding()
                return
            self.cm.begin_unbonding()
        tracked.active, tracked.unbonding_at = False, self._now() + DELAY

    @rule(w=worker_ix)
    def withdraw_stake(self, w: int) -> None:
        tracked = self.workers[w]
        with boa.env.prank(WORKERS[w]):
            if not tracked.unbonding_at or self._now() < tracked.unbonding_at:
                with boa.reverts():
                    self.cm.withdraw_stake()
                return
            assert self.cm.withdraw_stake() == tracked.stake
        tracked.stake, tracked.unbonding_at = 0, 0

    @rule(w=worker_ix)
    def withdraw_earnings(self, w: int) -> None:
        with boa.env.prank(WORKERS[w]):
            if not self.earnings[w]:
                with boa.reverts("computemarket: nothing to withdraw"):
                    self.cm.withdraw_earnings()
                return
            assert self.cm.withdraw_earnings() == self.earnings[w]
        self.earnings[w] = 0

    # ---- coordinators and jobs ----

    @rule()
    def toggle_rotating(self) -> None:
        with boa.env.prank(self.cm.owner()):
            if self.rotating_allowed:
                self.cm.revoke_measurement(ROTATING)
            else:
                self.cm.allow_measurement(ROTATING)
        self.rotating_allowed = not self.rotating_allowed

    @rule(s=st.integers(min_value=0, max_value=1), budget=st.integers(min_value=1, max_value=2000),
          duration=st.integers(min_value=1, max_value=DELAY - 1))
    def submit(self, s: int, budget: int, duration: int) -> None:
        deadline = self._now() + duration
        with boa.env.prank(SUBMITTERS[s]):
            job_id = self.cm.submit_job(self.dataset, SPEC, 1, 1, 3, 500, budget, deadline,
                                        value=budget + TRAINING_FEE)
        assert job_id == len(self.jobs) + 1
        self.jobs.append(TrackedJob(s, budget, deadline, self._now()))
        self.fees_paid += TRAINING_FEE

    @rule(s=st.integers(min_value=0, max_value=1), budget=st.integers(min_value=1, max_value=2000),
          duration=st.integers(min_value=1, max_value=DELAY - 1), fee=st.integers(min_value=1, max_value=50))
    def submit_serving(self, s: int, budget: int, duration: int, fee: int) -> None:
        deadline = self._now() + duration
        with boa.env.prank(SUBMITTERS[s]):
            if s != 0:
                with boa.reverts("computemarket: not the model's owner"):
                    self.cm.submit_serving(self.model, fee, 3, budget, deadline, value=budget)
                return
            job_id = self.cm.submit_serving(self.model, fee, 3, budget, deadline, value=budget)
        assert job_id == len(self.jobs) + 1
        self.jobs.append(TrackedJob(s, budget, deadline, self._now(), serving_fee=fee))

    def _draw_job(self, data: st.DataObject) -> int:
        live = [j for j, job in enumerate(self.jobs) if job.status in (OPEN, ACCEPTED)]
        return data.draw(st.sampled_from(live) if live and data.draw(st.booleans()) else
                         st.integers(min_value=0, max_value=len(self.jobs) - 1))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), c=st.sampled_from([0, 0, 1, 2]))
    def accept(self, data: st.DataObject, c: int) -> None:
        self._accept(self._draw_job(data), c)

    def _accept(self, j: int, c: int) -> None:
        job = self.jobs[j]
        takeover = job.status == ACCEPTED and job.coordinator != c and not self._allowed(job.coordinator)
        ok = (self._allowed(c) and (job.status == OPEN or takeover) and self._now() <= job.deadline)
        with boa.env.prank(COORDINATORS[c]):
            if not ok:
                with boa.reverts():
                    self.cm.accept_job(j + 1)
                return
            self.cm.accept_job(j + 1)
        job.status, job.coordinator = ACCEPTED, c

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        j = self._draw_job(data)
        coordinator = self.jobs[j].coordinator
        self._complete(j, data.draw(st.sampled_from([coordinator] * 3 + [0, 1, 2]) if coordinator >= 0 else
                                    st.integers(min_value=0, max_value=2)), data)

    @rule(data=st.data(), s=st.integers(min_value=0, max_value=1), budget=st.integers(min_value=1, max_value=2000),
          c=st.sampled_from([0, 2]))
    def run_job(self, data: st.DataObject, s: int, budget: int, c: int) -> None:
        """A job from submission to completion, the path random rules seldom walk whole."""
        self.submit(s, budget, DELAY // 2)
        self._accept(len(self.jobs) - 1, c)
        self._complete(len(self.jobs) - 1, c, data)

    def _complete(self, j: int, c: int, data: st.DataObject) -> None:
        job, now = self.jobs[j], self._now()
        payments = data.draw(st.lists(st.tuples(worker_ix, st.integers(0, 5), st.sampled_from([-1, 0, 0, 0, 1, 30])), max_size=4))
        slashes = data.draw(st.lists(st.tuples(worker_ix, st.integers(0, 1600)), max_size=2))
        ok = (self._allowed(c) and job.status == ACCEPTED and job.coordinator == c and now <= job.deadline)
        paid, stakes = 0, [w.stake for w in self.workers]
        sent: list[tuple[str, int, int]] = []
        for w, tasks, delta in payments:
            if job.serving_fee is None:
                fee = max(self.workers[w].fee_at(now) + delta, 0)
            else:  # mostly the offered fee, sometimes one off it
                fee = max(job.serving_fee + (delta if abs(delta) == 1 else 0), 0)
                ok = ok and fee == job.serving_fee
            sent.append((WORKERS[w], tasks, fee))
            paid += tasks * fee
            ok = ok and tasks > 0 and self.workers[w].party_to(job.submitted_at)
            ok = ok and fee >= self.workers[w].fee_at(now) and paid <= job.budget
        for w, amount in slashes:
            ok = ok and amount > 0 and self.workers[w].party_to(job.submitted_at) and amount <= stakes[w]
            stakes[w] -= amount
        with boa.env.prank(COORDINATORS[c]):
            call = lambda: self.cm.complete_job(  # noqa: E731
                j + 1, sent, [(WORKERS[w], a, "bafkslash") for w, a in slashes], CHECKPOINT, REPORT)
            if not ok:
                with boa.reverts():
                    call()
                return
            call()
        for (w, tasks, _), (_, _, fee) in zip(payments, sent):
            self.earnings[w] += tasks * fee
            job.payments.append((fee, self.workers[w].fee_at(now)))
        for w, amount in slashes:
            self.workers[w].stake -= amount
            self.workers[w].slashed += amount
        compensation = sum(a for _, a in slashes)
        job.status, job.paid, job.refunded, job.compensation = COMPLETED, paid, job.budget - paid, compensation
        self.refunds[job.submitter] += job.budget - paid + compensation

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        j = self._draw_job(data)
        job = self.jobs[j]
        if job.status not in (OPEN, ACCEPTED) or self._now() <= job.deadline:
            with boa.reverts():
                self.cm.expire_job(j + 1)
            return
        self.cm.expire_job(j + 1)
        job.status, job.refunded = EXPIRED, job.budget
        self.refunds[job.submitter] += job.budget

    @rule(s=st.integers(min_value=0, max_value=1))
    def withdraw_refund(self, s: int) -> None:
        with boa.env.prank(SUBMITTERS[s]):
            if not self.refunds[s]:
                with boa.reverts("computemarket: nothing to refund"):
                    self.cm.withdraw_refund()
                return
            assert self.cm.withdraw_refund() == self.refunds[s]
        self.refunds[s] = 0

    @rule(seconds=st.sampled_from([1, 10, DELAY // 3, DELAY]))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    # ---- invariants ----

    @invariant()
    def escrow_is_conserved(self) -> None:
        total_held = 0
        for j, job in enumerate(self.jobs):
            onchain = self.cm.get_job(j + 1)
            held = job.budget if onchain.status in (OPEN, ACCEPTED) else 0
            assert onchain.budget == onchain.paid + onchain.refunded + held
            assert (onchain.status, onchain.paid, onchain.refunded) == (job.status, job.paid, job.refunded)
            assert onchain.compensation == job.compensation
            total_held += held
        assert self.cm.total_held() == total_held
        assert sum(j.budget for j in self.jobs) == sum(j.paid + j.refunded for j in self.jobs) + total_held

    @invariant()
    def balance_is_exactly_what_is_owed(self) -> None:
        owed = sum(w.stake for w in self.workers) + sum(self.earnings) + sum(self.refunds)
        assert boa.env.get_balance(self.cm.address) == owed + self.cm.total_held()
        # every training fee reached the dataset, and nothing else did
        assert boa.env.get_balance(self.data_market.address) == self.fees_paid
        for w, tracked in enumerate(self.workers):
            assert self.cm.earnings(WORKERS[w]) == self.earnings[w]
            record = self.cm.workers(WORKERS[w])
            assert (record.stake, record.active, record.slashed) == (tracked.stake, tracked.active, tracked.slashed)
            assert record.min_fee == tracked.fee_at(self._now())
        for s, amount in enumerate(self.refunds):
            assert self.cm.refunds(SUBMITTERS[s]) == amount

    @invariant()
    def no_payment_below_a_minimum_fee(self) -> None:
        assert all(fee >= floor for job in self.jobs for fee, floor in job.payments)

    @invariant()
    def serving_jobs_pay_their_fee_and_no_training_fee(self) -> None:
        for j, job in enumerate(self.jobs):
            if job.serving_fee is None:
                continue
            assert all(fee == job.serving_fee for fee, _ in job.payments)
            assert self.cm.get_job(j + 1).training_fee == 0
            assert self.cm.get_serving(j + 1).fee_per_prediction == job.serving_fee

    @invariant()
    def slashed_stake_is_accounted_for(self) -> None:
        assert sum(w.slashed for w in self.workers) == sum(j.compensation for j in self.jobs)

    @invariant()
    def only_allow_listed_coordinators_act(self) -> None:
        assert all(j.coordinator in (0, 2) for j in self.jobs if j.status in (ACCEPTED, COMPLETED))
        assert not self.cm.is_coordinator(COORDINATORS[1])


ComputeMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestComputeInvariants = ComputeMachine.TestCase
