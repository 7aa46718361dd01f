"""Proposals: bonds, snapshot voting, evaluations and the decision rule."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from market_helpers import BOND, PERIOD, commit, create_dataset, mine, propose, reveal, transfer, vote

ROOT = b"\x22" * 32
MANIFEST = b"\x33" * 32


@pytest.fixture
def setup(market: Any, creator: str, alice: str, bob: str) -> int:
    """Dataset 1 with creator 600, alice 300, bob 100 shares; one block mined."""
    dataset_id = create_dataset(market, creator)
    transfer(market, creator, alice, dataset_id, 300)
    transfer(market, creator, bob, dataset_id, 100)
    mine()
    return dataset_id


def finalize(market: Any, proposal_id: int) -> None:
    market.finalize(proposal_id)


def after_deadline() -> None:
    boa.env.time_travel(seconds=PERIOD + 1)


def test_propose(market: Any, setup: int, carol: str) -> None:
    before = boa.env.get_balance(carol)
    digest = commit(market, carol, setup, item_count=5, root=ROOT, manifest=MANIFEST)
    (committed,) = market.get_logs()
    assert (committed.commitment, committed.committer) == (digest, carol)
    mine()
    block = boa.env.evm.patch.block_number
    now = boa.env.evm.patch.timestamp
    proposal_id = reveal(market, carol, setup, item_count=5, root=ROOT, manifest=MANIFEST)
    (event,) = market.get_logs()
    assert proposal_id == 1 and market.proposal_count() == 1
    assert (event.proposal_id, event.dataset_id, event.contributor) == (1, setup, carol)
    assert (event.root, event.manifest_digest, event.item_count, event.bond) == (ROOT, MANIFEST, 5, BOND)
    assert (event.snapshot_block, event.deadline, event.evaluator) == (block - 1, now + PERIOD, "0x" + "00" * 20)
    p = market.get_proposal(proposal_id)
    assert (p.dataset_id, p.contributor, p.bond, p.root, p.manifest_digest) == (setup, carol, BOND, ROOT, MANIFEST)
    assert (p.item_count, p.snapshot_block, p.deadline) == (5, block - 1, now + PERIOD)
    assert (p.yes_votes, p.no_votes, p.status, p.evaluated, p.shares_minted) == (0, 0, 0, False, 0)
    assert boa.env.get_balance(carol) == before - BOND
    assert boa.env.get_balance(market.address) == BOND
    assert market.snapshot_supply(proposal_id) == 1000
    assert propose(market, carol, setup) == 2


def test_propose_zero_bond(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, proposal_bond=0)
    mine()
    assert propose(market, carol, dataset_id, value=0) == 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"value": BOND - 1}, "datamarket: wrong bond"),
        ({"value": BOND + 1}, "datamarket: wrong bond"),
        ({"item_count": 0}, "datamarket: bad item count"),
        ({"item_count": 2**32}, "datamarket: bad item count"),
        ({"root": b"\x00" * 32}, "datamarket: empty root"),
    ],
)
def test_propose_validation(market: Any, setup: int, carol: str, kwargs: dict[str, Any], reason: str) -> None:
    with boa.reverts(reason):
        propose(market, carol, setup, **kwargs)


def test_propose_unknown_dataset(market: Any, setup: int, carol: str) -> None:
    commit(market, carol, setup + 1)
    mine()
    with boa.env.prank(carol), boa.reverts("datamarket: unknown dataset"):
        market.reveal_proposal(setup + 1, ROOT, MANIFEST, 1, b"\x00" * 32, value=BOND)


def test_unknown_proposal(market: Any, setup: int, alice: str) -> None:
    for call in (
        lambda: market.get_proposal(1),
        lambda: market.voting_power(1, alice),
        lambda: market.snapshot_supply(1),
        lambda: market.vote(1, True, 0),
        lambda: market.finalize(1),
        lambda: market.post_evaluation(1, 1, 1, ROOT),
    ):
        with boa.env.prank(alice), boa.reverts("datamarket: unknown proposal"):
            call()


def test_vote(market: Any, setup: int, alice: str, bob: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    vote(market, alice, proposal_id, True)
    (event,) = market.get_logs()
    assert (event.proposal_id, event.voter, event.support, event.weight) == (proposal_id, alice, True, 300)
    vote(market, bob, proposal_id, False)
    p = market.get_proposal(proposal_id)
    assert (p.yes_votes, p.no_votes) == (300, 100)
    assert market.has_voted(proposal_id, alice) and market.has_voted(proposal_id, bob)
    assert not market.has_voted(proposal_id, carol)


def test_vote_failures(market: Any, setup: int, alice: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    with boa.env.prank(carol), boa.reverts("datamarket: no voting power"):
        market.vote(proposal_id, True, 0)
    vote(market, alice, proposal_id, True)
    with boa.env.prank(alice), boa.reverts("datamarket: already voted"):
        market.vote(proposal_id, False, 0)


def test_vote_closed_at_deadline(market: Any, setup: int, alice: str, bob: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    boa.env.time_travel(seconds=PERIOD)
    vote(market, bob, proposal_id, True)  # the deadline itself is still open
    boa.env.time_travel(seconds=1)
    with boa.env.prank(alice), boa.reverts("datamarket: voting closed"):
        market.vote(proposal_id, True, 0)


def test_vote_after_finalize(market: Any, setup: int, creator: str, alice: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    with boa.env.prank(alice), boa.reverts("datamarket: proposal finalized"):
        market.vote(proposal_id, True, 0)


def test_voting_power_is_snapshot(market: Any, setup: int, creator: str, alice: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    # Shares moved in or after the proposal's block do not count.
    transfer(market, creator, carol, setup, 500)
    transfer(market, alice, carol, setup, 300)
    mine()
    assert market.voting_power(proposal_id, carol) == 0
    assert market.voting_power(proposal_id, alice) == 300
    assert market.voting_power(proposal_id, creator) == 600
    vote(market, alice, proposal_id, True)
    with boa.env.prank(carol), boa.reverts("datamarket: no voting power"):
        market.vote(proposal_id, True, 0)
    assert market.get_proposal(proposal_id).yes_votes == 300


def test_early_accept(market: Any, setup: int, creator: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup, item_count=4, root=ROOT, manifest=MANIFEST)
    before = boa.env.get_balance(carol)
    vote(market, creator, proposal_id, True)  # 600 of 1000
    finalize(market, proposal_id)
    logs = market.get_logs()
    finalized = next(log for log in logs if type(log).__name__ == "ProposalFinalized")
    assert (finalized.accepted, finalized.yes_votes, finalized.no_votes) == (True, 600, 0)
    assert (finalized.shares_minted, finalized.entry_index, finalized.expired) == (40, 0, False)
    p = market.get_proposal(proposal_id)
    assert (p.status, p.shares_minted) == (1, 40)
    assert market.balanceOf(carol, setup) == 40
    assert market.total_supply(setup) == 1040
    assert boa.env.get_balance(carol) == before
    assert market.refundable(carol) == BOND
    with boa.env.prank(carol):
        assert market.withdraw_refund() == BOND
    assert boa.env.get_balance(carol) == before + BOND
    assert market.entry_count(setup) == 1
    entry = market.get_entry(setup, 0)
    assert (entry.proposal_id, entry.contributor, entry.root, entry.item_count) == (proposal_id, carol, ROOT, 4)
    assert (entry.manifest_digest, entry.shares_minted) == (MANIFEST, 40)
    assert entry.block_number == boa.env.evm.patch.block_number
    assert market.get_dataset(setup).entry_count == 1
    with boa.reverts("datamarket: proposal finalized"):
        finalize(market, proposal_id)


def test_early_reject(market: Any, setup: int, creator: str, alice: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    before = boa.env.get_balance(carol)
    vote(market, creator, proposal_id, False)
    finalize(market, proposal_id)
    kinds = [type(log).__name__ for log in market.get_logs()]
    assert kinds == ["ProposalFinalized", "RevenueDeposited"]
    finalized, deposited = market.get_logs()
    assert (finalized.accepted, finalized.entry_index, finalized.shares_minted) == (False, 2**256 - 1, 0)
    assert finalized.expired is False  # voted down: the bond is forfeited
    assert (deposited.dataset_id, deposited.payer, deposited.amount, deposited.kind) == (setup, carol, BOND, 1)
    assert market.get_proposal(proposal_id).status == 2
    assert boa.env.get_balance(carol) == before
    assert market.revenue_total(setup) == BOND
    assert market.withdrawable(setup, creator) == BOND * 600 // 1000
    assert market.withdrawable(setup, alice) == BOND * 300 // 1000
    assert market.entry_count(setup) == 0


def test_voting_open(market: Any, setup: int, alice: str, carol: str) -> None:
    proposal_id = propose(market, carol, setup)
    vote(market, alice, proposal_id, True)  # 300 of 1000: not decisive
    with boa.reverts("datamarket: voting open"):
        finalize(market, proposal_id)
    boa.env.time_travel(seconds=PERIOD)
    with boa.reverts("datamarket: voting open"):
        finalize(market, proposal_id)
    boa.env.time_travel(seconds=1)
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).status == 1


@pytest.mark.parametrize(
    ("votes", "status"),
    [
        ([], 2),  # nobody voted
        ([("bob", True)], 1),  # 100 of 1000 reaches a 10% quorum
        ([("bob", False)], 2),
        ([("alice", True), ("bob", False)], 1),  # 75% yes
        ([("alice", False), ("bob", True)], 2),  # 25% yes
    ],
)
def test_decision_after_deadline(
    market: Any, creator: str, alice: str, bob: str, carol: str, votes: list[tuple[str, bool]], status: int
) -> None:
    dataset_id = create_dataset(market, creator, quorum_bps=1000, approval_bps=5000)
    transfer(market, creator, alice, dataset_id, 300)
    transfer(market, creator, bob, dataset_id, 100)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    voters = {"alice": alice, "bob": bob}
    for name, support in votes:
        vote(market, voters[name], proposal_id, support)
    after_deadline()
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).status == status


def test_quorum_boundary(market: Any, creator: str, alice: str, bob: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, quorum_bps=1001)
    transfer(market, creator, bob, dataset_id, 100)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, bob, proposal_id, True)  # 10.00% < 10.01%
    after_deadline()
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).status == 2


def test_reward_capped(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, base_reward_per_item=2**200, max_reward_per_proposal=77)
    mine()
    proposal_id = propose(market, carol, dataset_id, item_count=2**32 - 1)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 77


def test_zero_reward_mints_nothing(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, base_reward_per_item=0)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    assert [type(log).__name__ for log in market.get_logs()] == ["ProposalFinalized", "RefundCredited"]
    assert market.get_proposal(proposal_id).status == 1
    assert market.get_entry(dataset_id, 0).shares_minted == 0
    assert market.balanceOf(carol, dataset_id) == 0


def test_supply_cap_clamps_reward(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(
        market, creator, initial_shares=2**94 - 5, base_reward_per_item=10, max_reward_per_proposal=100
    )
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 4
    assert market.total_supply(dataset_id) == 2**94 - 1


@pytest.fixture
def evaluated(market: Any, creator: str, evaluator: str) -> int:
    dataset_id = create_dataset(
        market, creator, evaluation_required=True, evaluator=evaluator, max_reward_per_proposal=500
    )
    mine()
    return dataset_id


def test_post_evaluation(market: Any, evaluated: int, evaluator: str, carol: str) -> None:
    proposal_id = propose(market, carol, evaluated)
    with boa.env.prank(evaluator):
        market.post_evaluation(proposal_id, -5, 10, b"\x01" * 32)
    (event,) = market.get_logs()
    assert (event.proposal_id, event.evaluator, event.value, event.shares) == (proposal_id, evaluator, -5, 10)
    p = market.get_proposal(proposal_id)
    assert (p.evaluated, p.value, p.eval_shares, p.report_digest) == (True, -5, 10, b"\x01" * 32)
    assert (p.evaluator, p.evaluation_required) == (evaluator, True)


def test_post_evaluation_failures(market: Any, evaluated: int, creator: str, evaluator: str, carol: str) -> None:
    proposal_id = propose(market, carol, evaluated)
    with boa.env.prank(creator), boa.reverts("datamarket: not evaluator"):
        market.post_evaluation(proposal_id, 1, 1, b"\x01" * 32)
    with boa.env.prank(evaluator):
        market.post_evaluation(proposal_id, 1, 1, b"\x01" * 32)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    with boa.env.prank(evaluator), boa.reverts("datamarket: proposal finalized"):
        market.post_evaluation(proposal_id, 1, 1, b"\x01" * 32)


def test_evaluation_required(market: Any, evaluated: int, creator: str, evaluator: str, carol: str) -> None:
    proposal_id = propose(market, carol, evaluated)
    with boa.env.prank(creator), boa.reverts("datamarket: awaiting evaluation"):
        market.vote(proposal_id, True, 0)
    with boa.reverts("datamarket: awaiting evaluation"):
        finalize(market, proposal_id)
    with boa.env.prank(evaluator):
        market.post_evaluation(proposal_id, 3, 9_999, b"\x01" * 32)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 500  # capped
    assert market.balanceOf(carol, evaluated) == 500


def test_optional_evaluation_overrides_items(market: Any, creator: str, evaluator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator, evaluator=evaluator)
    mine()
    proposal_id = propose(market, carol, dataset_id, item_count=100)
    with boa.env.prank(evaluator):
        market.post_evaluation(proposal_id, 0, 0, b"\x01" * 32)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    p = market.get_proposal(proposal_id)
    assert (p.status, p.shares_minted) == (1, 0)


def test_early_decision_never_overrides_the_rule(market: Any, creator: str, alice: str, bob: str, carol: str) -> None:
    # Unanimity required: a 51% majority cannot decide early, and after the
    # deadline the full rule rejects it.
    dataset_id = create_dataset(market, creator, approval_bps=10_000, initial_shares=100)
    transfer(market, creator, alice, dataset_id, 49)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, creator, proposal_id, True)
    vote(market, alice, proposal_id, False)
    with boa.reverts("datamarket: voting open"):
        finalize(market, proposal_id)
    after_deadline()
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).status == 2


def test_early_rejection_waits_when_approval_is_low(market: Any, creator: str, alice: str, carol: str) -> None:
    # Approval 30%: 51% against still leaves room for 49% in favour, which
    # would pass; so no early rejection, and the yes side wins after the deadline.
    dataset_id = create_dataset(market, creator, approval_bps=3_000, initial_shares=100)
    transfer(market, creator, alice, dataset_id, 51)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, alice, proposal_id, False)
    vote(market, creator, proposal_id, True)
    with boa.reverts("datamarket: voting open"):
        finalize(market, proposal_id)
    after_deadline()
    finalize(market, proposal_id)
    assert market.get_proposal(proposal_id).status == 1


def test_missing_required_evaluation_expires_with_bond_refunded(
    market: Any, creator: str, carol: str, evaluator: str
) -> None:
    dataset_id = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    mine()
    proposal_id = propose(market, carol, dataset_id)
    with boa.reverts("datamarket: awaiting evaluation"):
        finalize(market, proposal_id)
    after_deadline()
    finalize(market, proposal_id)
    finalized = next(log for log in market.get_logs() if type(log).__name__ == "ProposalFinalized")
    assert (finalized.accepted, finalized.expired) == (False, True)
    assert market.get_proposal(proposal_id).status == 2
    assert market.refundable(carol) == BOND  # refunded, not forfeited
    assert market.revenue_total(dataset_id) == 0


def test_large_revenue_and_supply_never_overflow(market: Any, creator: str, carol: str) -> None:
    # Half the supply cap earning all the ether there is, then the largest
    # possible mint (a proposal mints at most its snapshot supply).
    dataset_id = create_dataset(market, creator, initial_shares=2**93, base_reward_per_item=2**63,
                                max_reward_per_proposal=2**94)
    whale = boa.env.generate_address("whale")
    boa.env.set_balance(whale, 2**97)
    with boa.env.prank(whale):
        market.deposit(dataset_id, value=2**95)
    mine()
    proposal_id = propose(market, carol, dataset_id, item_count=2**32 - 1)
    vote(market, creator, proposal_id, True)
    finalize(market, proposal_id)
    assert market.total_supply(dataset_id) == 2**94 - 1
    assert market.withdrawable(dataset_id, creator) == 2**95
    assert market.withdrawable(dataset_id, carol) == 0
    with boa.env.prank(whale):
        market.deposit(dataset_id, value=2**95 - 1)
    # What is still held is capped: 2**96 - 1 wei, plus one more is too much.
    assert market.revenue_held(dataset_id) == 2**96 - 1
    with boa.env.prank(whale), boa.reverts("datamarket: revenue overflow"):
        market.deposit(dataset_id, value=1)
    with boa.env.prank(carol):
        market.withdraw(dataset_id)
    with boa.env.prank(creator):
        market.withdraw(dataset_id)
    assert market.revenue_held(dataset_id) <= 2  # dust of the two holders
