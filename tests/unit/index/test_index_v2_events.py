"""What the index learns from the second DataMarket: delayed evaluator changes,
each proposal's evaluator, and expired against voted-down rejections."""

from __future__ import annotations

from pathlib import Path

from databright.chain import DatasetParams
from tests.unit.index.conftest import ACCOUNTS, World


def _advance(world: World, seconds: int) -> None:
    provider = world.ledger.w3.provider
    provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_evaluator_changes_and_expiry(world: World, tmp_path: Path) -> None:
    market = world.market
    params = DatasetParams(metadata_digest=b"\x06" * 32, initial_shares=1000, evaluation_required=True,
                           evaluator=ACCOUNTS[2].address, voting_period=3600)
    dataset_id = market.create_dataset(ACCOUNTS[0], params)
    market.transfer(ACCOUNTS[0], ACCOUNTS[3].address, dataset_id, 100)  # the creator no longer holds everything
    expiring = world.propose(dataset_id, world.manifest("a", "b"))
    market.set_evaluator(ACCOUNTS[0], dataset_id, ACCOUNTS[0].address)  # waits two days
    index = world.index(tmp_path / "index.sqlite")
    index.sync(market, world.loaders())

    row = index.dataset(dataset_id)
    assert row.evaluator == ACCOUNTS[2].address and row.next_evaluator == ACCOUNTS[0].address
    assert row.next_evaluator_at is not None
    assert row.evaluator_at(row.next_evaluator_at - 1) == ACCOUNTS[2].address
    assert row.evaluator_at(row.next_evaluator_at) == ACCOUNTS[0].address
    assert (row.min_accept_delay, row.max_mint_bps, row.min_royalty_bps) == (600, 1000, 500)
    assert index.proposal(expiring).evaluator == ACCOUNTS[2].address

    _advance(world, 2 * 86_400)
    later = world.propose(dataset_id, world.manifest("c"))
    market.finalize(ACCOUNTS[1], expiring)  # past its deadline, never evaluated
    market.set_evaluator(ACCOUNTS[0], dataset_id, ACCOUNTS[1].address)  # the pending one took effect first
    index.sync(market, world.loaders())
    assert index.proposal(later).evaluator == ACCOUNTS[0].address
    expired = index.proposal(expiring)
    assert (expired.status, expired.expired) == ("rejected", True)
    row = index.dataset(dataset_id)
    assert (row.evaluator, row.next_evaluator) == (ACCOUNTS[0].address, ACCOUNTS[1].address)
    assert market.refundable(ACCOUNTS[1].address) == params.proposal_bond


def test_voted_down_is_not_expired(world: World, tmp_path: Path) -> None:
    dataset_id = world.dataset()
    proposal_id = world.propose(dataset_id, world.manifest("a"))
    world.market.vote(ACCOUNTS[0], proposal_id, False)
    world.market.finalize(ACCOUNTS[0], proposal_id)
    index = world.index(tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders())
    row = index.proposal(proposal_id)
    assert (row.status, row.expired) == ("rejected", False)
