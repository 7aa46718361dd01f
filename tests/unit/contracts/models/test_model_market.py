"""Every path of ModelMarket: registry, versions, scores and payment channels."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from eth_account.signers.local import LocalAccount

from databright.models._voucher import VoucherDomain
from tests.unit.contracts.models._helpers import (
    CHALLENGE,
    CONTRACTS,
    DIGESTS,
    FEE,
    PRICE,
    create_dataset,
    domain,
    open_channel,
    redeem,
    register,
    sign,
)

ZERO = "0x" + "00" * 20


# --- registry ---------------------------------------------------------------


def test_register_pays_the_training_fee_to_the_dataset(
    data_market: Any, model_market: Any, owner: LocalAccount, creator: str, dataset: int
) -> None:
    before = data_market.revenue_total(dataset)
    model_id = register(model_market, owner.address, dataset, royalty_bps=250)
    assert data_market.revenue_total(dataset) == before + FEE
    assert data_market.withdrawable(dataset, creator) >= FEE
    m = model_market.get_model(model_id)
    assert (m.owner, m.dataset_id, m.royalty_bps, m.price, m.version_count) == (owner.address, dataset, 250, PRICE, 1)
    v = model_market.get_version(model_id, 1)
    assert (v.spec_digest, v.checkpoint_digest, v.report_digest, v.claimed_score) == (*DIGESTS, 900_000)
    assert model_market.model_count() == model_id
    assert boa.env.get_balance(model_market.address) == 0


def test_register_without_fee(data_market: Any, model_market: Any, owner: LocalAccount, creator: str) -> None:
    free = create_dataset(data_market, creator, training_fee=0)
    model_id = register(model_market, owner.address, free, fee=0)
    assert data_market.revenue_total(free) == 0
    assert model_market.get_model(model_id).dataset_id == free


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fee": FEE - 1}, "modelmarket: value is not the training fee"),
        ({"fee": FEE + 1}, "modelmarket: value is not the training fee"),
        ({"royalty_bps": 10_001}, "modelmarket: royalty above 100%"),
        ({"score": 1_000_001}, "modelmarket: bad score"),
        ({"dataset_id": 99}, "datamarket: unknown dataset"),
    ],
)
def test_register_rejects(
    model_market: Any, owner: LocalAccount, dataset: int, change: dict[str, int], reason: str
) -> None:
    args = {"dataset_id": dataset, **change}
    with boa.reverts(reason):
        register(model_market, owner.address, **args)


@pytest.mark.parametrize("empty", [0, 1, 2])
def test_register_needs_every_digest(model_market: Any, owner: LocalAccount, dataset: int, empty: int) -> None:
    digests = list(DIGESTS)
    digests[empty] = b"\0" * 32
    with boa.env.prank(owner.address), boa.reverts():
        model_market.register(dataset, *digests, 0, PRICE, 0, value=FEE)


def test_royalty_below_the_datasets_minimum(data_market: Any, model_market: Any, owner: LocalAccount,
                                            creator: str) -> None:
    strict = create_dataset(data_market, creator, training_fee=0, min_royalty_bps=500)
    with boa.env.prank(owner.address), boa.reverts("modelmarket: royalty below the dataset's minimum"):
        model_market.register(strict, *DIGESTS, 0, PRICE, 499)
    with boa.env.prank(owner.address):
        model_market.register(strict, *DIGESTS, 0, PRICE, 500)


def test_versions_are_history(model_market: Any, owner: LocalAccount, stranger: LocalAccount, model: int) -> None:
    new = (b"\x61" * 32, b"\x62" * 32, b"\x63" * 32)
    with boa.env.prank(owner.address):
        version = model_market.publish_version(model, *new, 950_000)
    assert version == 2
    assert model_market.get_version(model, 1).checkpoint_digest == DIGESTS[1]
    assert model_market.get_version(model, 2).checkpoint_digest == new[1]
    assert model_market.get_model(model).version_count == 2
    with boa.env.prank(stranger.address), boa.reverts("modelmarket: not the model's owner"):
        model_market.publish_version(model, *new, 0)
    with boa.reverts("modelmarket: unknown version"):
        model_market.get_version(model, 3)
    with boa.reverts("modelmarket: unknown version"):
        model_market.get_version(model, 0)
    with boa.reverts("modelmarket: unknown model"):
        model_market.get_model(999)


def test_set_price(model_market: Any, owner: LocalAccount, stranger: LocalAccount, model: int) -> None:
    with boa.env.prank(owner.address):
        model_market.set_price(model, 7)
    (event,) = model_market.get_logs()
    assert (event.model_id, event.price) == (model, 7)
    assert model_market.get_model(model).price == 7
    with boa.env.prank(stranger.address), boa.reverts("modelmarket: not the model's owner"):
        model_market.set_price(model, 1)


def test_verified_score(model_market: Any, owner: LocalAccount, evaluator: str, model: int) -> None:
    assert model_market.get_verification(model, 1).block_number == 0
    with boa.env.prank(owner.address), boa.reverts("modelmarket: not the dataset's evaluator"):
        model_market.post_verified_score(model, 1, 800_000, b"\x71" * 32)
    with boa.env.prank(evaluator), boa.reverts("modelmarket: unknown version"):
        model_market.post_verified_score(model, 2, 800_000, b"\x71" * 32)
    with boa.env.prank(evaluator), boa.reverts("modelmarket: bad score"):
        model_market.post_verified_score(model, 1, 1_000_001, b"\x71" * 32)
    with boa.env.prank(evaluator), boa.reverts("modelmarket: no report"):
        model_market.post_verified_score(model, 1, 800_000, b"\0" * 32)
    with boa.env.prank(evaluator):
        model_market.post_verified_score(model, 1, 812_345, b"\x71" * 32)
    got = model_market.get_verification(model, 1)
    assert (got.score, got.report_digest, got.evaluator) == (812_345, b"\x71" * 32, evaluator)
    with boa.env.prank(evaluator), boa.reverts("modelmarket: score already verified"):
        model_market.post_verified_score(model, 1, 1, b"\x72" * 32)


def test_no_verified_score_without_an_evaluator(
    data_market: Any, model_market: Any, owner: LocalAccount, creator: str
) -> None:
    lone = create_dataset(data_market, creator)
    model_id = register(model_market, owner.address, lone)
    for sender in (owner.address, ZERO):
        with boa.env.prank(sender), boa.reverts("modelmarket: not the dataset's evaluator"):
            model_market.post_verified_score(model_id, 1, 1, b"\x71" * 32)


# --- channels ---------------------------------------------------------------


def test_open_and_top_up(model_market: Any, user: LocalAccount, stranger: LocalAccount, model: int) -> None:
    channel = open_channel(model_market, user.address, model, 5 * 10**15)
    c = model_market.get_channel(channel)
    assert (c.user, c.model_id, c.deposit, c.redeemed, c.closes_at, c.settled) == (
        user.address, model, 5 * 10**15, 0, 0, False)
    with boa.env.prank(stranger.address):
        model_market.top_up(channel, value=10**15)
    assert model_market.get_channel(channel).deposit == 6 * 10**15
    assert model_market.channel_count() == channel
    with boa.env.prank(user.address), boa.reverts("modelmarket: zero deposit"):
        model_market.top_up(channel)
    with boa.env.prank(user.address), boa.reverts("modelmarket: unknown channel"):
        model_market.top_up(channel + 1, value=1)
    with boa.env.prank(user.address), boa.reverts("modelmarket: zero deposit"):
        model_market.open_channel(model)
    with boa.env.prank(user.address), boa.reverts("modelmarket: unknown model"):
        model_market.open_channel(999, value=1)


def test_redeem_pays_owner_and_royalty_exactly(
    data_market: Any, model_market: Any, owner: LocalAccount, user: LocalAccount, stranger: LocalAccount,
    dataset: int, model: int
) -> None:
    channel = open_channel(model_market, user.address, model, 10**16)
    revenue, balance = data_market.revenue_total(dataset), boa.env.get_balance(owner.address)
    amount = 37 * PRICE + 3  # royalty 10% of an amount that does not divide evenly
    redeem(model_market, stranger.address, sign(model_market, user, channel, amount))
    logs = model_market.get_logs()
    royalty = amount * 1000 // 10_000
    assert data_market.revenue_total(dataset) == revenue + royalty
    assert boa.env.get_balance(owner.address) == balance + amount - royalty
    assert model_market.get_channel(channel).redeemed == amount
    event = [e for e in logs if type(e).__name__ == "VoucherRedeemed"][0]
    assert (event.channel_id, event.model_id, event.amount, event.paid, event.royalty) == (
        channel, model, amount, amount, royalty)

    later = amount + 10 * PRICE
    redeem(model_market, owner.address, sign(model_market, user, channel, later))
    paid = later - amount
    assert data_market.revenue_total(dataset) == revenue + royalty + paid * 1000 // 10_000
    assert boa.env.get_balance(model_market.address) == 10**16 - later


def test_redeem_rejects(model_market: Any, owner: LocalAccount, user: LocalAccount, stranger: LocalAccount,
                        model: int) -> None:
    channel = open_channel(model_market, user.address, model, 10**16)
    voucher = sign(model_market, user, channel, 5 * PRICE)
    redeem(model_market, owner.address, voucher)
    with boa.reverts("modelmarket: voucher already redeemed"):
        redeem(model_market, owner.address, voucher)
    with boa.reverts("modelmarket: voucher already redeemed"):
        redeem(model_market, owner.address, sign(model_market, user, channel, 4 * PRICE))
    with boa.reverts("modelmarket: voucher above the deposit"):
        redeem(model_market, owner.address, sign(model_market, user, channel, 10**16 + 1))
    with boa.reverts("modelmarket: bad signature"):
        redeem(model_market, owner.address, sign(model_market, stranger, channel, 6 * PRICE))
    other = open_channel(model_market, user.address, model, 10**16)
    moved = sign(model_market, user, other, 6 * PRICE)
    with boa.env.prank(owner.address), boa.reverts("modelmarket: bad signature"):
        model_market.redeem(channel, moved.amount, moved.signature)
    foreign = VoucherDomain(domain(model_market).chain_id + 1, model_market.address).sign(user, channel, 6 * PRICE)
    with boa.reverts("modelmarket: bad signature"):
        redeem(model_market, owner.address, foreign)
    with boa.env.prank(owner.address), boa.reverts("modelmarket: unknown channel"):
        model_market.redeem(999, 1, voucher.signature)
    with boa.env.prank(owner.address), boa.reverts():
        model_market.redeem(channel, 6 * PRICE, b"\x01" * 65)


def test_close_challenge_and_settle(
    model_market: Any, owner: LocalAccount, user: LocalAccount, stranger: LocalAccount, model: int
) -> None:
    channel = open_channel(model_market, user.address, model, 10**16)
    with boa.env.prank(stranger.address), boa.reverts("modelmarket: not the channel's user"):
        model_market.close(channel)
    with boa.env.prank(stranger.address), boa.reverts("modelmarket: channel open"):
        model_market.settle(channel)
    with boa.env.prank(user.address):
        model_market.close(channel)
    closes_at = model_market.get_channel(channel).closes_at
    assert closes_at == boa.env.evm.patch.timestamp + CHALLENGE
    with boa.env.prank(user.address), boa.reverts("modelmarket: channel closing"):
        model_market.close(channel)
    with boa.env.prank(user.address), boa.reverts("modelmarket: channel closing"):
        model_market.top_up(channel, value=1)
    with boa.env.prank(user.address), boa.reverts("modelmarket: challenge period running"):
        model_market.settle(channel)
    # the owner may still redeem during the challenge period
    redeem(model_market, owner.address, sign(model_market, user, channel, 3 * PRICE))
    boa.env.time_travel(seconds=CHALLENGE)
    with boa.reverts("modelmarket: challenge period over"):
        redeem(model_market, owner.address, sign(model_market, user, channel, 4 * PRICE))
    balance = boa.env.get_balance(user.address)
    with boa.env.prank(stranger.address):
        model_market.settle(channel)
    assert boa.env.get_balance(user.address) == balance + 10**16 - 3 * PRICE
    assert model_market.get_channel(channel).settled
    with boa.env.prank(stranger.address), boa.reverts("modelmarket: channel settled"):
        model_market.settle(channel)
    with boa.reverts("modelmarket: channel settled"):
        redeem(model_market, owner.address, sign(model_market, user, channel, 4 * PRICE))


def test_voucher_digest_matches_python(model_market: Any, user: LocalAccount, model: int) -> None:
    d = domain(model_market)
    assert model_market.voucher_digest(7, 12345) == d.digest(7, 12345)
    voucher = d.sign(user, 7, 12345)
    assert d.signer(voucher) == user.address
    fields, name, version, chain_id, contract, _, _ = model_market.eip712Domain()
    assert (name, version, chain_id, contract) == ("DataBright ModelMarket", "1", d.chain_id, d.contract)


def test_constructor_rejects() -> None:
    with boa.reverts("modelmarket: no data market"):
        boa.load(str(CONTRACTS / "model_market.vy"), ZERO, CHALLENGE)
    with boa.reverts("modelmarket: bad challenge period"):
        boa.load(str(CONTRACTS / "model_market.vy"), "0x" + "11" * 20, 0)
