"""Proofs of concept of the security review of the first DataMarket.

Each test replays an attack that worked on the first contract and checks
that the present one refuses it or makes it pointless.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import boa
import pytest

from databright.chain.datamarket import DatasetParams
from market_helpers import (
    BOND,
    ETHER,
    PERIOD,
    SALT,
    commit,
    commitment,
    create_dataset,
    make_account,
    mine,
    propose,
    reveal,
    transfer,
    vote,
)

ROOT = b"\x22" * 32
MANIFEST = b"\x33" * 32
REPORT = b"\x44" * 32
ZERO = "0x" + "00" * 20
MODEL_MARKET = Path(__file__).resolve().parent / "helpers/model_market.vy"


def finalized_event(market: Any) -> Any:
    return next(log for log in market.get_logs() if type(log).__name__ == "ProposalFinalized")


@pytest.fixture
def evaluated(market: Any, creator: str, alice: str, evaluator: str) -> int:
    """An evaluated dataset: creator 700 shares, alice 300."""
    dataset_id = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    transfer(market, creator, alice, dataset_id, 300)
    mine()
    return dataset_id


# -- 1. the evaluation is bound to the vote -----------------------------------


def test_evaluation_cannot_be_reposted_after_the_vote(
    market: Any, evaluated: int, creator: str, evaluator: str, carol: str
) -> None:
    # Before: voters approved 10 shares, a re-post made it 1,000,000.
    proposal_id = propose(market, carol, evaluated)
    with boa.env.prank(evaluator):
        market.post_evaluation(proposal_id, 1, 10, REPORT)
    vote(market, creator, proposal_id, True)
    with boa.env.prank(evaluator), boa.reverts("datamarket: already evaluated"):
        market.post_evaluation(proposal_id, 1, 1_000_000, REPORT)
    market.finalize(proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 10


def test_optional_evaluation_only_before_the_first_vote(
    market: Any, creator: str, alice: str, evaluator: str, carol: str
) -> None:
    dataset_id = create_dataset(market, creator, evaluator=evaluator)
    transfer(market, creator, alice, dataset_id, 300)
    mine()
    proposal_id = propose(market, carol, dataset_id, item_count=2)
    vote(market, alice, proposal_id, True)
    with boa.env.prank(evaluator), boa.reverts("datamarket: votes already cast"):
        market.post_evaluation(proposal_id, 1, 9_000, REPORT)
    vote(market, creator, proposal_id, True)
    market.finalize(proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 20  # items x base reward


def test_no_evaluation_after_the_deadline_and_expiry_is_final(
    market: Any, evaluated: int, creator: str, evaluator: str, carol: str
) -> None:
    # Before: a post after the deadline turned an expiring proposal into an
    # accepted one.
    proposal_id = propose(market, carol, evaluated)
    boa.env.time_travel(seconds=PERIOD + 1)
    with boa.env.prank(evaluator), boa.reverts("datamarket: voting closed"):
        market.post_evaluation(proposal_id, 1, 10, REPORT)
    market.finalize(proposal_id)
    event = finalized_event(market)
    assert (event.accepted, event.expired) == (False, True)
    with boa.env.prank(evaluator), boa.reverts("datamarket: proposal finalized"):
        market.post_evaluation(proposal_id, 1, 10, REPORT)
    assert market.refundable(carol) == BOND


def test_evaluator_change_waits_and_never_touches_open_proposals(
    market: Any, evaluated: int, creator: str, evaluator: str, carol: str
) -> None:
    # Before: the creator swapped the evaluator to themselves at any moment.
    open_id = propose(market, carol, evaluated)
    with boa.env.prank(creator):
        market.set_evaluator(evaluated, creator)
    changed = market.get_logs()[0]
    delay = market.EVALUATOR_DELAY()
    assert changed.effective_at == boa.env.evm.patch.timestamp + delay
    ds = market.get_dataset(evaluated)
    assert (ds.evaluator, ds.next_evaluator, ds.next_evaluator_at) == (evaluator, creator, changed.effective_at)
    with boa.env.prank(creator), boa.reverts("datamarket: not evaluator"):
        market.post_evaluation(open_id, 1, 10**6, REPORT)

    boa.env.time_travel(seconds=delay)
    assert market.evaluator(evaluated) == creator
    # The proposal keeps the evaluator it was revealed under.
    assert market.get_proposal(open_id).evaluator == evaluator
    later_id = propose(market, carol, evaluated)
    assert market.get_proposal(later_id).evaluator == creator
    with boa.env.prank(creator), boa.reverts("datamarket: not evaluator"):
        market.post_evaluation(open_id, 1, 10**6, REPORT)


def test_sole_holder_changes_at_once_but_open_proposals_keep_theirs(
    market: Any, creator: str, evaluator: str, carol: str
) -> None:
    dataset_id = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    mine()
    open_id = propose(market, carol, dataset_id)
    with boa.env.prank(creator):
        market.set_evaluator(dataset_id, creator)
    assert market.evaluator(dataset_id) == creator
    with boa.env.prank(creator), boa.reverts("datamarket: not evaluator"):
        market.post_evaluation(open_id, 1, 10, REPORT)
    with boa.env.prank(evaluator):
        market.post_evaluation(open_id, 1, 10, REPORT)


def test_pending_evaluator_change_is_replaced(market: Any, evaluated: int, creator: str, alice: str) -> None:
    with boa.env.prank(creator):
        market.set_evaluator(evaluated, creator)
        market.set_evaluator(evaluated, alice)
    boa.env.time_travel(seconds=market.EVALUATOR_DELAY())
    assert market.evaluator(evaluated) == alice


# -- 2. copying a proposal ------------------------------------------------------


def test_copier_who_sees_the_reveal_before_it_is_mined_gains_nothing(
    market: Any, creator: str, carol: str
) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    copier = make_account("copier")
    commit(market, carol, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST)
    mine()
    # The honest reveal sits in the mempool: the copier learns root, manifest
    # and count and gets its own commitment and reveal in first.
    commit(market, copier, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST, salt=b"\x01" * 32)
    with boa.reverts("datamarket: commitment too recent"):
        reveal(market, copier, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST, salt=b"\x01" * 32)
    # The honest commitment's salt is in the reveal too, but it binds carol.
    with boa.reverts("datamarket: no commitment"):
        reveal(market, copier, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST)
    proposal_id = reveal(market, carol, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST)
    assert market.get_proposal(proposal_id).contributor == carol
    # Right after the honest reveal is mined the copier's commitment is old
    # enough, but the root is taken.
    mine()
    with boa.reverts("datamarket: root already proposed"):
        reveal(market, copier, dataset_id, item_count=5, root=ROOT, manifest=MANIFEST, salt=b"\x01" * 32)


def test_copied_commitment_does_not_block_the_honest_reveal(market: Any, creator: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    digest = commitment(carol, dataset_id, ROOT, MANIFEST, 3, SALT)
    copier = make_account("copier")
    with boa.env.prank(copier):  # front-runs carol's commit with the same hash
        market.commit_proposal(digest)
    with boa.env.prank(carol):
        market.commit_proposal(digest)
    mine()
    assert reveal(market, carol, dataset_id, root=ROOT, manifest=MANIFEST) == 1


def test_accepted_root_is_refused_and_a_failed_one_can_return(
    market: Any, creator: str, alice: str, carol: str
) -> None:
    dataset_id = create_dataset(market, creator)
    mine()
    rejected = propose(market, carol, dataset_id, root=ROOT)
    vote(market, creator, rejected, False)
    market.finalize(rejected)
    accepted = propose(market, carol, dataset_id, root=ROOT)
    vote(market, creator, accepted, True)
    market.finalize(accepted)
    with boa.reverts("datamarket: root already proposed"):
        propose(market, alice, dataset_id, root=ROOT)


# -- 3. dilution by a majority ------------------------------------------------------


def test_majority_cannot_dilute_the_minority_in_one_block(market: Any) -> None:
    # Before: 20 proposals from a second address, voted and finalized in one
    # block, took a 49% minority to 0.24%. The defaults of DatasetParams:
    defaults = {f.name: f.default for f in fields(DatasetParams)}
    assert (defaults["min_accept_delay"], defaults["max_mint_bps"]) == (600, 1000)
    majority, minority, sidekick = (make_account(n, 1000 * ETHER) for n in ("major", "minor", "side"))
    dataset_id = create_dataset(
        market, majority, initial_shares=100,
        **{k: defaults[k] for k in ("min_accept_delay", "max_mint_bps", "voting_period", "base_reward_per_item",
                                    "max_reward_per_proposal", "quorum_bps", "approval_bps")},
    )
    transfer(market, majority, minority, dataset_id, 49)
    mine()
    roots = [bytes([i + 1]) * 32 for i in range(20)]
    for root in roots:
        commit(market, sidekick, dataset_id, item_count=1000, root=root)
    mine()
    ids = [reveal(market, sidekick, dataset_id, item_count=1000, root=root) for root in roots]
    for proposal_id in ids:
        vote(market, majority, proposal_id, True)
        with boa.reverts("datamarket: acceptance delay"):
            market.finalize(proposal_id)
    boa.env.time_travel(seconds=defaults["min_accept_delay"])
    for proposal_id in ids:
        market.finalize(proposal_id)
    # All 20 together minted 10% of the supply: the minority keeps 49/110.
    assert market.total_supply(dataset_id) == 110
    assert market.balanceOf(minority, dataset_id) * 10_000 // market.total_supply(dataset_id) == 4454
    # The next voting period allows the next 10%, no more.
    boa.env.time_travel(seconds=defaults["voting_period"])
    more = propose(market, sidekick, dataset_id, item_count=1000)
    vote(market, majority, more, True)
    vote(market, sidekick, more, True)
    boa.env.time_travel(seconds=defaults["min_accept_delay"])
    market.finalize(more)
    assert market.get_proposal(more).shares_minted == 11


# -- 4. pull payments ------------------------------------------------------------------


def test_contributor_refusing_eth_and_shares_cannot_block_finalize(
    market: Any, creator: str, holder_deployer: Any
) -> None:
    # Before: finalize pushed ETH and called the ERC-1155 hook, so a contract
    # contributor that refused either kept its proposal open forever.
    dataset_id = create_dataset(market, creator)
    mine()
    holder = holder_deployer.deploy(market.address)
    boa.env.set_balance(holder.address, BOND)
    holder.arm(dataset_id, True, False)  # re-enters on ETH, refuses ERC-1155
    proposal_id = propose(market, holder.address, dataset_id, item_count=2)
    vote(market, creator, proposal_id, True)
    market.finalize(proposal_id)
    assert market.balanceOf(holder.address, dataset_id) == 20
    assert market.refundable(holder.address) == BOND
    with boa.env.prank(holder.address), boa.reverts():
        market.withdraw_refund()  # its own hook fails; the bond stays credited
    assert market.refundable(holder.address) == BOND
    holder.arm(dataset_id, False, True)
    with boa.env.prank(holder.address):
        assert market.withdraw_refund() == BOND
    with boa.env.prank(holder.address), boa.reverts("datamarket: nothing to refund"):
        market.withdraw_refund()


# -- 5. the revenue cap ------------------------------------------------------------------


def test_cap_is_on_revenue_held_not_lifetime(market: Any, creator: str, carol: str) -> None:
    # Before: revenue_total only grew and was capped at 2**96 wei, after which
    # deposits and rejecting finalizations reverted with the bond stuck.
    dataset_id = create_dataset(market, creator)
    whale = make_account("whale", 2**97)
    for _ in range(3):
        with boa.env.prank(whale):
            market.deposit(dataset_id, value=2**95)
        with boa.env.prank(creator):
            market.withdraw(dataset_id)
        boa.env.set_balance(whale, 2**97)  # the same ether goes round again
    assert market.revenue_total(dataset_id) == 3 * 2**95 > 2**96
    assert market.revenue_held(dataset_id) <= 3  # rounding dust, carried
    mine()
    proposal_id = propose(market, carol, dataset_id)
    vote(market, creator, proposal_id, False)
    market.finalize(proposal_id)  # the forfeited bond is still paid in
    assert BOND <= market.revenue_held(dataset_id) <= BOND + 3
    with boa.env.prank(creator):
        assert BOND <= market.withdraw(dataset_id) <= BOND + 3


# -- 7. snapshots, outcomes, counts ------------------------------------------------------


def test_proposal_in_the_dataset_creation_block_is_refused(market: Any, creator: str, carol: str) -> None:
    # Before: its snapshot supply was 0, so it could only forfeit its bond.
    commit(market, carol, 1)  # dataset 1 does not exist yet
    mine()
    create_dataset(market, creator)
    with boa.reverts("datamarket: dataset too new"):
        reveal(market, carol, 1)
    mine()
    proposal_id = reveal(market, carol, 1)
    assert market.snapshot_supply(proposal_id) == 1000


def test_finalized_event_tells_forfeited_from_refunded(market: Any, evaluated: int, creator: str, carol: str) -> None:
    expiring = propose(market, carol, evaluated)
    boa.env.time_travel(seconds=PERIOD + 1)
    market.finalize(expiring)
    assert finalized_event(market).expired is True
    assert market.refundable(carol) == BOND

    dataset_id = create_dataset(market, creator)
    mine()
    voted_down = propose(market, carol, dataset_id)
    vote(market, creator, voted_down, False)
    market.finalize(voted_down)
    assert finalized_event(market).expired is False
    assert market.refundable(carol) == BOND  # unchanged: forfeited
    assert market.revenue_total(dataset_id) == BOND


def test_vote_hint_is_checked(market: Any, creator: str, alice: str, carol: str) -> None:
    dataset_id = create_dataset(market, creator)
    for _ in range(5):
        transfer(market, creator, alice, dataset_id, 1)
        mine()
    proposal_id = propose(market, carol, dataset_id)
    for _ in range(3):
        transfer(market, creator, alice, dataset_id, 1)
        mine()
    hint = market.checkpoint_hint(proposal_id, alice)
    assert hint == 4
    for wrong in (0, 3, 5, 7, 8, 2**64):
        with boa.env.prank(alice), boa.reverts("datamarket: bad checkpoint hint"):
            market.vote(proposal_id, True, wrong)
    with boa.env.prank(carol), boa.reverts("datamarket: no voting power"):
        market.vote(proposal_id, True, 0)
    with boa.env.prank(alice):
        market.vote(proposal_id, True, hint)
    assert market.get_proposal(proposal_id).yes_votes == 5


def test_unanimous_vote_needs_no_delay_and_no_cap(market: Any, creator: str, carol: str) -> None:
    # The delay and the cap protect a minority; when every snapshot share
    # votes yes there is none (a creator seeding its own dataset).
    dataset_id = create_dataset(market, creator, initial_shares=100, min_accept_delay=600, max_mint_bps=1000)
    mine()
    proposal_id = propose(market, carol, dataset_id, item_count=5)
    vote(market, creator, proposal_id, True)
    market.finalize(proposal_id)
    assert market.get_proposal(proposal_id).shares_minted == 50


# -- the interface the model market uses ----------------------------------------------------


def test_model_market_reads_terms_and_pays_through_the_interface(
    market: Any, creator: str, alice: str, evaluator: str
) -> None:
    dataset_id = create_dataset(market, creator, training_fee=7 * 10**15, min_royalty_bps=250, evaluator=evaluator)
    transfer(market, creator, alice, dataset_id, 500)
    models = boa.load(str(MODEL_MARKET), market.address)
    assert models.terms(dataset_id) == (7 * 10**15, 250, evaluator)
    payer = make_account("payer")
    with boa.env.prank(payer):
        assert models.pay_prediction(dataset_id, value=ETHER) == ETHER // 40
    assert market.revenue_total(dataset_id) == ETHER // 40
    assert market.withdrawable(dataset_id, alice) == ETHER // 80
