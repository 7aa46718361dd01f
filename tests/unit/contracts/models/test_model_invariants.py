"""Stateful property tests of the payment channels.

Random sequences of opens, top-ups, vouchers (fresh, replayed, stale, above
the deposit, signed by the wrong key), redemptions, closes, time moves and
settlements run against one model while a Python model tracks every channel.
After each step: deposits = redeemed + refunded + still locked; the contract's
balance is exactly what is locked; the dataset received exactly the royalty
of every payment, to the wei; no voucher ever paid twice; a closed channel
pays nothing after its challenge period or its settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.unit.contracts.models._helpers import (
    CHALLENGE,
    DATA_MARKET,
    MODEL_MARKET,
    create_dataset,
    keyed_account,
    register,
    sign,
)

_DATA_MARKET = boa.load_partial(str(DATA_MARKET))
_MODEL_MARKET = boa.load_partial(str(MODEL_MARKET))
USERS = [keyed_account(20 + i, 10**24) for i in range(3)]
OWNER = keyed_account(30, 10**24)
ROYALTY_BPS = 777  # does not divide most payments evenly
who = st.integers(min_value=0, max_value=len(USERS) - 1)
wei = st.integers(min_value=1, max_value=10**18)


@dataclass
class Tracked:
    user: int
    deposit: int
    redeemed: int = 0
    closes_at: int = 0
    settled: bool = False
    refunded: int = 0


class ChannelMachine(RuleBasedStateMachine):
    @initialize()
    def deploy(self) -> None:
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.data_market = _DATA_MARKET.deploy()
        self.model_market = _MODEL_MARKET.deploy(self.data_market.address, CHALLENGE)
        creator = keyed_account(31, 10**24).address
        self.dataset = create_dataset(self.data_market, creator, training_fee=0)
        self.model = register(self.model_market, OWNER.address, self.dataset, fee=0, royalty_bps=ROYALTY_BPS)
        self.channels: dict[int, Tracked] = {}
        self.royalties = 0
        self.owner_income = 0
        self.owner_start = boa.env.get_balance(OWNER.address)
        self.paid_vouchers: set[tuple[int, int]] = set()

    def teardown(self) -> None:
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    def _now(self) -> int:
        return int(boa.env.evm.patch.timestamp)

    def _redeemable(self, c: Tracked) -> bool:
        return not c.settled and (c.closes_at == 0 or self._now() < c.closes_at)

    @rule(user=who, deposit=wei)
    def open(self, user: int, deposit: int) -> None:
        with boa.env.prank(USERS[user].address):
            channel = self.model_market.open_channel(self.model, value=deposit)
        self.channels[channel] = Tracked(user, deposit)

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(min_value=0), amount=wei, payer=who)
    def top_up(self, pick: int, amount: int, payer: int) -> None:
        channel = sorted(self.channels)[pick % len(self.channels)]
        c = self.channels[channel]
        with boa.env.prank(USERS[payer].address):
            if c.closes_at:
                with boa.reverts("modelmarket: channel closing"):
                    self.model_market.top_up(channel, value=amount)
                return
            self.model_market.top_up(channel, value=amount)
        c.deposit += amount

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(min_value=0), step=st.integers(min_value=-10**17, max_value=10**18),
          forged=st.booleans())
    def redeem(self, pick: int, step: int, forged: bool) -> None:
        channel = sorted(self.channels)[pick % len(self.channels)]
        c = self.channels[channel]
        amount = max(0, c.redeemed + step)
        signer = USERS[(c.user + 1) % len(USERS)] if forged else USERS[c.user]
        voucher = sign(self.model_market, signer, channel, amount)
        ok = self._redeemable(c) and c.redeemed < amount <= c.deposit and not forged
        with boa.env.prank(OWNER.address):
            if not ok:
                with boa.reverts():
                    self.model_market.redeem(channel, amount, voucher.signature)
                return
            self.model_market.redeem(channel, amount, voucher.signature)
        assert (channel, amount) not in self.paid_vouchers
        self.paid_vouchers.add((channel, amount))
        paid = amount - c.redeemed
        royalty = paid * ROYALTY_BPS // 10_000
        self.royalties += royalty
        self.owner_income += paid - royalty
        c.redeemed = amount

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(min_value=0))
    def replay_latest(self, pick: int) -> None:
        channel = sorted(self.channels)[pick % len(self.channels)]
        c = self.channels[channel]
        voucher = sign(self.model_market, USERS[c.user], channel, c.redeemed)
        with boa.env.prank(OWNER.address), boa.reverts():
            self.model_market.redeem(channel, voucher.amount, voucher.signature)

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(min_value=0))
    def close(self, pick: int) -> None:
        channel = sorted(self.channels)[pick % len(self.channels)]
        c = self.channels[channel]
        with boa.env.prank(USERS[c.user].address):
            if c.closes_at:
                with boa.reverts("modelmarket: channel closing"):
                    self.model_market.close(channel)
                return
            self.model_market.close(channel)
        c.closes_at = self._now() + CHALLENGE

    @rule(seconds=st.sampled_from([1, CHALLENGE // 2, CHALLENGE]))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(min_value=0), caller=who)
    def settle(self, pick: int, caller: int) -> None:
        channel = sorted(self.channels)[pick % len(self.channels)]
        c = self.channels[channel]
        ok = c.closes_at != 0 and self._now() >= c.closes_at and not c.settled
        user_before = boa.env.get_balance(USERS[c.user].address)
        with boa.env.prank(USERS[caller].address):
            if not ok:
                with boa.reverts():
                    self.model_market.settle(channel)
                return
            self.model_market.settle(channel)
        c.settled = True
        c.refunded = c.deposit - c.redeemed
        gained = boa.env.get_balance(USERS[c.user].address) - user_before
        assert gained == c.refunded

    @invariant()
    def conserved(self) -> None:
        if not hasattr(self, "channels"):
            return
        locked = sum(c.deposit - c.redeemed - c.refunded for c in self.channels.values())
        deposits = sum(c.deposit for c in self.channels.values())
        redeemed = sum(c.redeemed for c in self.channels.values())
        refunded = sum(c.refunded for c in self.channels.values())
        assert deposits == redeemed + refunded + locked
        assert boa.env.get_balance(self.model_market.address) == locked
        assert redeemed == self.royalties + self.owner_income
        assert self.data_market.revenue_total(self.dataset) == self.royalties
        assert boa.env.get_balance(OWNER.address) - self.owner_start == self.owner_income

    @invariant()
    def channels_match(self) -> None:
        if not hasattr(self, "channels"):
            return
        for channel, c in self.channels.items():
            got = self.model_market.get_channel(channel)
            assert (got.deposit, got.redeemed, got.closes_at, got.settled) == (
                c.deposit, c.redeemed, c.closes_at, c.settled)


ChannelMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChannelMachine = ChannelMachine.TestCase
