"""Dataset creation, parameters and the evaluator role."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from market_helpers import BOND, DEFAULTS, PERIOD, create_dataset

ZERO = "0x" + "00" * 20


def test_create_dataset_mints_initial_shares(market: Any, creator: str) -> None:
    dataset_id = create_dataset(market, creator, training_fee=7)
    assert dataset_id == 1
    assert market.dataset_count() == 1
    assert market.balanceOf(creator, dataset_id) == 1000
    assert market.total_supply(dataset_id) == 1000
    ds = market.get_dataset(dataset_id)
    assert ds.creator == creator
    assert ds.metadata_digest == DEFAULTS["metadata_digest"]
    assert (ds.quorum_bps, ds.approval_bps, ds.voting_period) == (2000, 5000, PERIOD)
    assert (ds.proposal_bond, ds.base_reward_per_item, ds.max_reward_per_proposal) == (BOND, 10, 10_000)
    assert ds.evaluation_required is False
    assert ds.training_fee == 7
    assert ds.evaluator == ZERO
    assert ds.entry_count == 0
    assert ds.created_block == boa.env.evm.patch.block_number
    assert (ds.min_accept_delay, ds.max_mint_bps, ds.min_royalty_bps) == (0, 10_000, 0)
    assert (ds.next_evaluator, ds.next_evaluator_at) == (ZERO, 0)
    assert market.entry_count(dataset_id) == 0


def test_reads_for_other_contracts(market: Any, creator: str, evaluator: str) -> None:
    dataset_id = create_dataset(market, creator, training_fee=7, evaluator=evaluator, min_royalty_bps=250)
    assert market.training_fee(dataset_id) == 7
    assert market.min_royalty_bps(dataset_id) == 250
    assert market.evaluator(dataset_id) == evaluator
    for read in (market.training_fee, market.min_royalty_bps, market.evaluator):
        with boa.reverts("datamarket: unknown dataset"):
            read(dataset_id + 1)


def test_create_dataset_event(market: Any, creator: str, evaluator: str) -> None:
    dataset_id = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    logs = market.get_logs()
    created = [log for log in logs if type(log).__name__ == "DatasetCreated"]
    assert len(created) == 1
    event = created[0]
    assert event.dataset_id == dataset_id
    assert event.creator == creator
    assert event.evaluation_required is True
    assert event.evaluator == evaluator
    assert event.initial_shares == 1000


def test_dataset_ids_increase(market: Any, creator: str, alice: str) -> None:
    assert create_dataset(market, creator) == 1
    assert create_dataset(market, alice) == 2
    assert market.get_dataset(2).creator == alice
    assert market.balanceOf(alice, 2) == 1000
    assert market.balanceOf(alice, 1) == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"initial_shares": 0}, "datamarket: bad initial shares"),
        ({"initial_shares": 2**94}, "datamarket: bad initial shares"),
        ({"quorum_bps": 0}, "datamarket: bad quorum"),
        ({"quorum_bps": 10_001}, "datamarket: bad quorum"),
        ({"approval_bps": 0}, "datamarket: bad approval"),
        ({"approval_bps": 10_001}, "datamarket: bad approval"),
        ({"voting_period": 0}, "datamarket: bad voting period"),
        ({"voting_period": 2**32}, "datamarket: bad voting period"),
        ({"proposal_bond": 2**96}, "datamarket: bond too large"),
        ({"max_reward_per_proposal": 0}, "datamarket: bad max reward"),
        ({"evaluation_required": True}, "datamarket: evaluator required"),
        ({"min_accept_delay": PERIOD + 1}, "datamarket: bad accept delay"),
        ({"max_mint_bps": 0}, "datamarket: bad mint cap"),
        ({"max_mint_bps": 10_001}, "datamarket: bad mint cap"),
        ({"min_royalty_bps": 10_001}, "datamarket: bad royalty"),
    ],
)
def test_create_dataset_validation(market: Any, creator: str, overrides: dict[str, Any], reason: str) -> None:
    with boa.reverts(reason):
        create_dataset(market, creator, **overrides)


def test_create_dataset_bounds_accepted(market: Any, creator: str) -> None:
    dataset_id = create_dataset(
        market, creator, quorum_bps=10_000, approval_bps=1, voting_period=2**32 - 1, proposal_bond=2**96 - 1
    )
    ds = market.get_dataset(dataset_id)
    assert (ds.quorum_bps, ds.approval_bps, ds.voting_period, ds.proposal_bond) == (10_000, 1, 2**32 - 1, 2**96 - 1)


def test_get_dataset_unknown(market: Any, creator: str) -> None:
    with boa.reverts("datamarket: unknown dataset"):
        market.get_dataset(1)
    create_dataset(market, creator)
    with boa.reverts("datamarket: unknown dataset"):
        market.get_dataset(2)
    with boa.reverts("datamarket: unknown dataset"):
        market.entry_count(0)


def test_set_evaluator(market: Any, creator: str, evaluator: str) -> None:
    dataset_id = create_dataset(market, creator)
    with boa.env.prank(creator):
        market.set_evaluator(dataset_id, evaluator)
    (event,) = market.get_logs()
    # The creator holds every share, so the change is immediate.
    assert (event.dataset_id, event.evaluator, event.effective_at) == (
        dataset_id, evaluator, boa.env.evm.patch.timestamp)
    assert market.get_dataset(dataset_id).evaluator == evaluator
    with boa.env.prank(creator):
        market.set_evaluator(dataset_id, ZERO)
    assert market.get_dataset(dataset_id).evaluator == ZERO


def test_set_evaluator_failures(market: Any, creator: str, alice: str, evaluator: str) -> None:
    with boa.env.prank(creator), boa.reverts("datamarket: unknown dataset"):
        market.set_evaluator(1, evaluator)
    dataset_id = create_dataset(market, creator, evaluation_required=True, evaluator=evaluator)
    with boa.env.prank(alice), boa.reverts("datamarket: not creator"):
        market.set_evaluator(dataset_id, alice)
    with boa.env.prank(creator), boa.reverts("datamarket: evaluator required"):
        market.set_evaluator(dataset_id, ZERO)
