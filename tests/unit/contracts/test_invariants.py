"""Stateful property tests: shares, revenue and votes are conserved.

A random sequence of transfers, deposits, withdrawals, commits and reveals,
copied reveals, evaluations, votes (with right and wrong checkpoint hints),
finalizations, refund claims and block/time moves runs against one dataset
(an optional evaluator, a minimum time before early acceptance, a cap on
shares minted per proposal) while a small Python model tracks what the
contract must report.
"""

from __future__ import annotations

from typing import Any

import boa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from market_helpers import BOND, CONTRACT, PERIOD, commitment, create_dataset, make_account

_DEPLOYER = boa.load_partial(str(CONTRACT))
ACCOUNTS = [make_account(f"fuzz-{i}", 10**24) for i in range(4)]
EVALUATOR = make_account("fuzz-evaluator")
who = st.integers(min_value=0, max_value=len(ACCOUNTS) - 1)
DELAY = 600
MINT_BPS = 1000
SALT = b"\x07" * 32


class DataMarketMachine(RuleBasedStateMachine):
    @initialize()
    def deploy(self) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.market: Any = _DEPLOYER.deploy()
        self.dataset = create_dataset(
            self.market, ACCOUNTS[0], initial_shares=1000, quorum_bps=3000, evaluator=EVALUATOR,
            min_accept_delay=DELAY, max_mint_bps=MINT_BPS,
        )
        for i, amount in enumerate((300, 200, 100), start=1):
            with boa.env.prank(ACCOUNTS[0]):
                self.market.safeTransferFrom(ACCOUNTS[0], ACCOUNTS[i], self.dataset, amount, b"")
        self.balances = [400, 300, 200, 100]
        self.committed = [0, 0, 0, 0]  # balances at the end of the previous block
        self.deposited = 0
        self.open_bonds: dict[int, int] = {}
        self.powers: dict[int, list[int]] = {}
        self.tallies: dict[int, list[int]] = {}
        self.voted: dict[int, set[int]] = {}
        self.opened: dict[int, int] = {}  # reveal timestamp
        self.evaluation: dict[int, int] = {}  # shares posted
        self.roots: dict[int, bytes] = {}
        self.refunds = [0, 0, 0, 0]
        self.window = [0, 0]  # minting window: start, shares minted in it
        self.nonce = 0
        self._advance(blocks=1)

    def teardown(self) -> None:
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    def _advance(self, blocks: int = 0, seconds: int = 0) -> None:
        if seconds:
            boa.env.time_travel(seconds=seconds)
        else:
            boa.env.time_travel(blocks=blocks)
        self.committed = list(self.balances)

    @rule(src=who, dst=who, fraction=st.integers(min_value=0, max_value=100))
    def transfer(self, src: int, dst: int, fraction: int) -> None:
        amount = self.balances[src] * fraction // 100
        with boa.env.prank(ACCOUNTS[src]):
            self.market.safeTransferFrom(ACCOUNTS[src], ACCOUNTS[dst], self.dataset, amount, b"")
        self.balances[src] -= amount
        self.balances[dst] += amount

    @rule(payer=who, amount=st.integers(min_value=1, max_value=10**20))
    def deposit(self, payer: int, amount: int) -> None:
        with boa.env.prank(ACCOUNTS[payer]):
            self.market.deposit(self.dataset, value=amount)
        self.deposited += amount

    @rule(holder=who)
    def withdraw(self, holder: int) -> None:
        due = self.market.withdrawable(self.dataset, ACCOUNTS[holder])
        if due == 0:
            with boa.env.prank(ACCOUNTS[holder]), boa.reverts("datamarket: nothing to withdraw"):
                self.market.withdraw(self.dataset)
            return
        with boa.env.prank(ACCOUNTS[holder]):
            assert self.market.withdraw(self.dataset) == due

    @rule(contributor=who, items=st.integers(min_value=1, max_value=30), early=st.booleans())
    def propose(self, contributor: int, items: int, early: bool) -> None:
        self.nonce += 1
        root = self.nonce.to_bytes(32, "big")
        sender = ACCOUNTS[contributor]
        args = (self.dataset, root, b"\x02" * 32, items, SALT)
        with boa.env.prank(sender):
            self.market.commit_proposal(commitment(sender, *args))
            if early:  # a reveal in the commit's own block is refused
                with boa.reverts("datamarket: commitment too recent"):
                    self.market.reveal_proposal(*args, value=BOND)
        self._advance(blocks=1)
        with boa.env.prank(sender):
            pid = self.market.reveal_proposal(*args, value=BOND)
        self.open_bonds[pid] = BOND
        self.powers[pid] = list(self.committed)
        self.tallies[pid] = [0, 0]
        self.voted[pid] = set()
        self.opened[pid] = boa.env.evm.patch.timestamp
        self.roots[pid] = root

    @precondition(lambda self: bool(self.open_bonds))
    @rule(data=st.data(), copier=who)
    def copy(self, data: st.DataObject, copier: int) -> None:
        """A copier who saw an open proposal's reveal cannot open its root again."""
        pid = data.draw(st.sampled_from(sorted(self.open_bonds)))
        sender = ACCOUNTS[copier]
        args = (self.dataset, self.roots[pid], b"\x02" * 32, 1, SALT)
        with boa.env.prank(sender):
            self.market.commit_proposal(commitment(sender, *args))
        self._advance(blocks=1)
        with boa.env.prank(sender), boa.reverts("datamarket: root already proposed"):
            self.market.reveal_proposal(*args, value=BOND)

    @precondition(lambda self: bool(self.open_bonds))
    @rule(data=st.data(), shares=st.integers(min_value=0, max_value=500))
    def post_evaluation(self, data: st.DataObject, shares: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.open_bonds)))
        deadline = self.market.get_proposal(pid).deadline
        with boa.env.prank(EVALUATOR):
            if pid in self.evaluation or self.voted[pid] or boa.env.evm.patch.timestamp > deadline:
                with boa.reverts():
                    self.market.post_evaluation(pid, 1, shares, b"\x03" * 32)
                return
            self.market.post_evaluation(pid, 1, shares, b"\x03" * 32)
        self.evaluation[pid] = shares

    @rule(account=who)
    def withdraw_refund(self, account: int) -> None:
        with boa.env.prank(ACCOUNTS[account]):
            if self.refunds[account] == 0:
                with boa.reverts("datamarket: nothing to refund"):
                    self.market.withdraw_refund()
                return
            assert self.market.withdraw_refund() == self.refunds[account]
        self.refunds[account] = 0

    @precondition(lambda self: bool(self.open_bonds))
    @rule(data=st.data(), support=st.booleans(), eligible=st.booleans())
    def vote(self, data: st.DataObject, support: bool, eligible: bool) -> None:
        self._vote(data, support, eligible)

    def _vote(self, data: st.DataObject, support: bool, eligible: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.open_bonds)))
        deadline = self.market.get_proposal(pid).deadline
        # Mostly draw voters who may vote, so that proposals get decided.
        candidates = [i for i, w in enumerate(self.powers[pid]) if w and i not in self.voted[pid]]
        voter = data.draw(st.sampled_from(candidates)) if eligible and candidates else data.draw(who)
        weight = self.powers[pid][voter]
        hint = self.market.checkpoint_hint(pid, ACCOUNTS[voter])
        with boa.env.prank(ACCOUNTS[voter]):
            if data.draw(st.booleans()):  # a wrong hint never counts
                with boa.reverts():
                    self.market.vote(pid, support, hint + data.draw(st.integers(min_value=1, max_value=3)))
            if boa.env.evm.patch.timestamp > deadline or voter in self.voted[pid] or weight == 0:
                with boa.reverts():
                    self.market.vote(pid, support, hint)
                return
            self.market.vote(pid, support, hint)
        self.voted[pid].add(voter)
        self.tallies[pid][0 if support else 1] += weight

    @precondition(lambda self: bool(self.open_bonds))
    @rule(data=st.data())
    def vote_yes(self, data: st.DataObject) -> None:
        """A second vote rule, so that acceptances are common enough."""
        self._vote(data, True, True)

    @precondition(lambda self: bool(self.open_bonds))
    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.open_bonds)))
        p = self.market.get_proposal(pid)
        supply = sum(self.powers[pid])
        now = boa.env.evm.patch.timestamp
        yes_early = 2 * p.yes_votes > supply
        # Early acceptance waits DELAY unless the vote is unanimous.
        waited = now >= self.opened[pid] + DELAY or p.yes_votes == supply
        early = (yes_early and waited) or 2 * p.no_votes > supply
        if not early and now <= p.deadline:
            with boa.reverts():
                self.market.finalize(pid)
            return
        contributor = ACCOUNTS.index(p.contributor)
        self.market.finalize(pid)
        p = self.market.get_proposal(pid)
        del self.open_bonds[pid]
        event("accepted" if p.status == 1 else "rejected")
        if p.status == 1:
            wanted = self.evaluation.get(pid, p.item_count * 10)
            if p.yes_votes != supply:  # unanimity skips the minting window
                if now >= self.window[0] + PERIOD:
                    self.window = [now, 0]
                cap = supply * MINT_BPS // 10_000
                allowed = cap - min(cap, self.window[1])
                event("minting window binds" if wanted > allowed else "minting window leaves room")
                wanted = min(wanted, allowed)
            assert p.shares_minted == wanted
            self.window[1] += wanted
            self.balances[contributor] += p.shares_minted
            self.refunds[contributor] += BOND
        else:
            self.deposited += BOND

    @rule(blocks=st.integers(min_value=1, max_value=3))
    def mine(self, blocks: int) -> None:
        self._advance(blocks=blocks)

    @rule()
    def pass_deadline(self) -> None:
        self._advance(seconds=PERIOD + 12)

    @invariant()
    def supply_is_sum_of_balances(self) -> None:
        if not hasattr(self, "market"):
            return
        balances = [self.market.balanceOf(a, self.dataset) for a in ACCOUNTS]
        assert balances == self.balances
        assert self.market.total_supply(self.dataset) == sum(balances)

    @invariant()
    def revenue_is_conserved(self) -> None:
        if not hasattr(self, "market"):
            return
        paid = [
            self.market.withdrawn(self.dataset, a) + self.market.withdrawable(self.dataset, a) for a in ACCOUNTS
        ]
        assert self.market.revenue_total(self.dataset) == self.deposited
        assert self.deposited - len(ACCOUNTS) <= sum(paid) <= self.deposited
        owed = sum(self.market.withdrawable(self.dataset, a) for a in ACCOUNTS)
        assert [self.market.refundable(a) for a in ACCOUNTS] == self.refunds
        held = self.market.revenue_held(self.dataset)
        assert owed <= held <= owed + len(ACCOUNTS)
        escrow = owed + sum(self.open_bonds.values()) + sum(self.refunds)
        assert boa.env.get_balance(self.market.address) >= escrow

    @invariant()
    def votes_follow_the_snapshot(self) -> None:
        if not hasattr(self, "market"):
            return
        for pid, powers in self.powers.items():
            p = self.market.get_proposal(pid)
            supply = self.market.snapshot_supply(pid)
            assert supply == sum(powers)
            assert p.yes_votes + p.no_votes <= supply
            assert [p.yes_votes, p.no_votes] == self.tallies[pid]
            assert [self.market.voting_power(pid, a) for a in ACCOUNTS] == powers


DataMarketMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDataMarketMachine = DataMarketMachine.TestCase
