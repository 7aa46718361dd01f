"""Revenue: pro-rata deposits, pull withdrawals, corrections on mint and transfer."""

from __future__ import annotations

from typing import Any

import boa

from market_helpers import ETHER, create_dataset, mine, propose, transfer, vote


def deposit(market: Any, payer: str, dataset_id: int, amount: int) -> None:
    with boa.env.prank(payer):
        market.deposit(dataset_id, value=amount)


def withdraw(market: Any, holder: str, dataset_id: int) -> int:
    with boa.env.prank(holder):
        amount: int = market.withdraw(dataset_id)
    return amount


def test_deposit_and_withdraw(market: Any, creator: str, alice: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    transfer(market, creator, alice, dataset_id, 250)
    deposit(market, carol, dataset_id, ETHER)
    (event,) = market.get_logs()
    assert (event.dataset_id, event.payer, event.amount, event.kind) == (dataset_id, carol, ETHER, 0)
    assert market.revenue_total(dataset_id) == ETHER
    assert market.withdrawable(dataset_id, creator) == ETHER * 3 // 4
    assert market.withdrawable(dataset_id, alice) == ETHER // 4
    before = boa.env.get_balance(alice)
    assert withdraw(market, alice, dataset_id) == ETHER // 4
    (event,) = market.get_logs()
    assert (event.dataset_id, event.holder, event.amount) == (dataset_id, alice, ETHER // 4)
    assert boa.env.get_balance(alice) == before + ETHER // 4
    assert market.withdrawn(dataset_id, alice) == ETHER // 4
    assert market.withdrawable(dataset_id, alice) == 0
    with boa.env.prank(alice), boa.reverts("datamarket: nothing to withdraw"):
        market.withdraw(dataset_id)


def test_deposit_failures(market: Any, creator: str, carol: str) -> None:
    with boa.env.prank(carol), boa.reverts("datamarket: unknown dataset"):
        market.deposit(1, value=1)
    dataset_id = create_dataset(market, creator)
    with boa.env.prank(carol), boa.reverts("datamarket: zero deposit"):
        market.deposit(dataset_id, value=0)
    with boa.env.prank(carol), boa.reverts("datamarket: nothing to withdraw"):
        market.withdraw(dataset_id)


def test_transfer_keeps_earned_revenue(market: Any, creator: str, alice: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    deposit(market, carol, dataset_id, 1000)
    transfer(market, creator, alice, dataset_id, 500)
    # Revenue earned before the transfer stays with the seller.
    assert market.withdrawable(dataset_id, creator) == 1000
    assert market.withdrawable(dataset_id, alice) == 0
    deposit(market, carol, dataset_id, 1000)
    assert market.withdrawable(dataset_id, creator) == 1500
    assert market.withdrawable(dataset_id, alice) == 500


def test_mint_does_not_dilute_past_revenue(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    deposit(market, carol, dataset_id, 1000)
    proposal_id = propose(market, carol, dataset_id, item_count=100)  # 1000 shares
    vote(market, creator, proposal_id, True)
    market.finalize(proposal_id)
    assert market.withdrawable(dataset_id, carol) == 0
    assert market.withdrawable(dataset_id, creator) == 1000
    deposit(market, carol, dataset_id, 1000)
    assert market.withdrawable(dataset_id, carol) == 500
    assert market.withdrawable(dataset_id, creator) == 1500


def test_remainder_carried(market: Any, creator: str, alice: str, bob: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, initial_shares=3)
    transfer(market, creator, alice, dataset_id, 1)
    transfer(market, creator, bob, dataset_id, 1)
    for _ in range(3):
        deposit(market, carol, dataset_id, 1)
    # 3 wei over 3 equal holders: the carried remainders add up exactly.
    assert [market.withdrawable(dataset_id, h) for h in (creator, alice, bob)] == [1, 1, 1]
    deposit(market, carol, dataset_id, 2)
    total = sum(market.withdrawable(dataset_id, h) for h in (creator, alice, bob))
    assert 5 - 3 <= total <= 5


def test_withdraw_is_reentrancy_safe(market: Any, creator: str, carol: str, holder_deployer: Any) -> None:
    dataset_id = create_dataset(market, creator)
    holder = holder_deployer.deploy(market.address)
    transfer(market, creator, holder.address, dataset_id, 500)
    deposit(market, carol, dataset_id, 1000)
    holder.arm(dataset_id, True, True)
    with boa.reverts():
        holder.pull(dataset_id)
    holder.arm(dataset_id, False, True)
    assert holder.pull(dataset_id) == 500
    assert boa.env.get_balance(holder.address) == 500
    assert boa.env.get_balance(market.address) == 500


def test_receive_hook_cannot_reenter(market: Any, creator: str, carol: str, holder_deployer: Any) -> None:
    dataset_id = create_dataset(market, creator)
    holder = holder_deployer.deploy(market.address)
    transfer(market, creator, holder.address, dataset_id, 500)
    deposit(market, carol, dataset_id, 1000)
    holder.arm(dataset_id, True, True)
    with boa.reverts():
        transfer(market, creator, holder.address, dataset_id, 100)
