"""ERC-1155 shares: transfers, approvals, checkpoints and exported surface."""

from __future__ import annotations

from typing import Any

import boa

from market_helpers import create_dataset, mine, transfer

ZERO = "0x" + "00" * 20


def test_safe_transfer_from(market: Any, creator: str, alice: str) -> None:
    dataset_id = create_dataset(market, creator)
    transfer(market, creator, alice, dataset_id, 250)
    (event,) = market.get_logs()
    # namedtuple fields: address, operator, from, to, id, value
    assert tuple(event[1:]) == (creator, creator, alice, dataset_id, 250)
    assert market.balanceOf(alice, dataset_id) == 250
    assert market.balanceOf(creator, dataset_id) == 750
    assert market.balanceOfBatch([creator, alice], [dataset_id, dataset_id]) == [750, 250]


def test_transfer_failures(market: Any, creator: str, alice: str) -> None:
    dataset_id = create_dataset(market, creator)
    with boa.env.prank(alice), boa.reverts("datamarket: not owner or approved"):
        market.safeTransferFrom(creator, alice, dataset_id, 1, b"")
    with boa.env.prank(creator), boa.reverts("datamarket: insufficient balance"):
        market.safeTransferFrom(creator, alice, dataset_id, 1001, b"")
    with boa.env.prank(creator), boa.reverts("datamarket: transfer to the zero address"):
        market.safeTransferFrom(creator, ZERO, dataset_id, 1, b"")
    with boa.env.prank(alice), boa.reverts("datamarket: insufficient balance"):
        market.safeTransferFrom(alice, creator, dataset_id, 1, b"")


def test_zero_and_self_transfers(market: Any, creator: str, alice: str) -> None:
    dataset_id = create_dataset(market, creator)
    transfer(market, creator, creator, dataset_id, 400)
    transfer(market, creator, alice, dataset_id, 0)
    assert market.balanceOf(creator, dataset_id) == 1000
    mine()
    assert market.balance_of_at(creator, dataset_id, boa.env.evm.patch.block_number - 1) == 1000


def test_approved_operator(market: Any, creator: str, alice: str, bob: str) -> None:
    dataset_id = create_dataset(market, creator)
    with boa.env.prank(creator):
        market.setApprovalForAll(bob, True)
    assert market.isApprovedForAll(creator, bob)
    with boa.env.prank(bob):
        market.safeTransferFrom(creator, alice, dataset_id, 10, b"")
        market.safeBatchTransferFrom(creator, alice, [dataset_id], [5], b"")
    assert market.balanceOf(alice, dataset_id) == 15
    with boa.env.prank(creator):
        market.setApprovalForAll(bob, False)
    with boa.env.prank(bob), boa.reverts("datamarket: not owner or approved"):
        market.safeBatchTransferFrom(creator, alice, [dataset_id], [5], b"")


def test_safe_batch_transfer_from(market: Any, creator: str, alice: str) -> None:
    first = create_dataset(market, creator)
    second = create_dataset(market, creator, initial_shares=50)
    with boa.env.prank(creator):
        market.safeBatchTransferFrom(creator, alice, [first, second, first], [100, 20, 1], b"")
    (event,) = market.get_logs()
    assert (event[4], event[5]) == ([first, second, first], [100, 20, 1])
    assert market.balanceOfBatch([alice, alice, creator, creator], [first, second, first, second]) == [101, 20, 899, 30]
    mine()
    block = boa.env.evm.patch.block_number - 1
    assert market.balance_of_at(alice, first, block) == 101
    assert market.balance_of_at(creator, second, block) == 30


def test_batch_failures(market: Any, creator: str, alice: str) -> None:
    dataset_id = create_dataset(market, creator)
    with boa.env.prank(creator), boa.reverts("datamarket: ids and amounts length mismatch"):
        market.safeBatchTransferFrom(creator, alice, [dataset_id], [1, 2], b"")
    with boa.env.prank(creator), boa.reverts("datamarket: insufficient balance"):
        market.safeBatchTransferFrom(creator, alice, [dataset_id, dataset_id], [600, 600], b"")
    with boa.env.prank(creator), boa.reverts("datamarket: transfer to the zero address"):
        market.safeBatchTransferFrom(creator, ZERO, [dataset_id], [1], b"")


def test_transfer_to_contract_requires_receiver(market: Any, creator: str, holder_deployer: Any) -> None:
    dataset_id = create_dataset(market, creator)
    holder = holder_deployer.deploy(market.address)
    transfer(market, creator, holder.address, dataset_id, 10)
    with boa.env.prank(creator):
        market.safeBatchTransferFrom(creator, holder.address, [dataset_id], [5], b"")
    assert market.balanceOf(holder.address, dataset_id) == 15
    holder.arm(dataset_id, False, False)
    with boa.reverts("holder: rejected"):
        transfer(market, creator, holder.address, dataset_id, 10)
    with boa.reverts("holder: rejected"):
        with boa.env.prank(creator):
            market.safeBatchTransferFrom(creator, holder.address, [dataset_id], [5], b"")
    with boa.reverts():  # a contract without hooks
        transfer(market, creator, market.address, dataset_id, 10)


def test_checkpoints(market: Any, creator: str, alice: str) -> None:
    dataset_id = create_dataset(market, creator)
    start = boa.env.evm.patch.block_number
    history = []
    for step in range(12):
        mine()
        transfer(market, creator, alice, dataset_id, step + 1)
        if step % 3 == 0:  # several changes inside one block
            transfer(market, alice, creator, dataset_id, 1)
        history.append((boa.env.evm.patch.block_number, market.balanceOf(alice, dataset_id)))
    mine()
    assert market.balance_of_at(alice, dataset_id, start) == 0
    assert market.balance_of_at(creator, dataset_id, start) == 1000
    assert market.balance_of_at(alice, dataset_id, start - 1) == 0
    assert market.balance_of_at(ZERO, dataset_id, start - 1) == 0  # the supply
    for block, balance in history:
        assert market.balance_of_at(alice, dataset_id, block) == balance
        assert market.balance_of_at(creator, dataset_id, block) == 1000 - balance
        assert market.balance_of_at(ZERO, dataset_id, block) == 1000
        assert market.balance_of_at(alice, dataset_id, block - 1) in {0, *(b for _, b in history)}


def test_future_block(market: Any, creator: str) -> None:
    dataset_id = create_dataset(market, creator)
    now = boa.env.evm.patch.block_number
    with boa.reverts("datamarket: future block"):
        market.balance_of_at(creator, dataset_id, now)
    with boa.reverts("datamarket: future block"):
        market.balance_of_at(ZERO, dataset_id, now)
    assert market.balance_of_at(creator, dataset_id, now - 1) == 0


def test_no_mint_or_owner_functions_exported(market: Any) -> None:
    names = {item.get("name") for item in market.abi}
    for forbidden in ("safe_mint", "safe_mint_batch", "burn", "burn_batch", "set_uri", "set_minter",
                      "transfer_ownership", "renounce_ownership", "owner"):
        assert forbidden not in names
    for required in ("balanceOf", "balanceOfBatch", "setApprovalForAll", "isApprovedForAll", "uri",
                     "supportsInterface", "total_supply", "safeTransferFrom", "safeBatchTransferFrom"):
        assert required in names


def test_supports_interface(market: Any) -> None:
    assert market.supportsInterface(bytes.fromhex("d9b67a26"))
    assert market.supportsInterface(bytes.fromhex("01ffc9a7"))
    assert not market.supportsInterface(bytes.fromhex("ffffffff"))
    assert market.uri(1) == ""
