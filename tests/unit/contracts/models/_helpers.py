"""Helpers shared by the ModelMarket contract tests (titanoboa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.models._voucher import Voucher, VoucherDomain

CONTRACTS = Path(__file__).resolve().parents[4] / "src/databright/chain/contracts"
DATA_MARKET = CONTRACTS / "data_market.vy"
MODEL_MARKET = CONTRACTS / "model_market.vy"
ETHER = 10**18
CHALLENGE = 3600
FEE = 10**17
PRICE = 10**13
DIGESTS = (b"\x51" * 32, b"\x52" * 32, b"\x53" * 32)


def keyed_account(n: int, balance: int = 100 * ETHER) -> LocalAccount:
    """An account whose private key is known, so it can sign vouchers."""
    account: LocalAccount = Account.from_key((0xB0B0_0000 + n).to_bytes(32, "big"))
    boa.env.set_balance(account.address, balance)
    return account


def deploy_pair(challenge: int = CHALLENGE) -> tuple[Any, Any]:
    data_market = boa.load(str(DATA_MARKET))
    return data_market, boa.load(str(MODEL_MARKET), data_market.address, challenge)


def create_dataset(data_market: Any, creator: str, training_fee: int = FEE, evaluator: str | None = None,
                   shares: int = 1000, min_royalty_bps: int = 0) -> int:
    with boa.env.prank(creator):
        dataset_id: int = data_market.create_dataset(
            b"\x11" * 32, shares, 2000, 5000, 3600, 10**16, 10, 10_000, False, training_fee,
            evaluator or "0x" + "00" * 20, 600, 10_000, min_royalty_bps)
    return dataset_id


def register(model_market: Any, owner: str, dataset_id: int, fee: int = FEE, price: int = PRICE,
             royalty_bps: int = 1000, score: int = 900_000) -> int:
    with boa.env.prank(owner):
        model_id: int = model_market.register(dataset_id, *DIGESTS, score, price, royalty_bps, value=fee)
    return model_id


def open_channel(model_market: Any, user: str, model_id: int, deposit: int = 10**16) -> int:
    with boa.env.prank(user):
        channel_id: int = model_market.open_channel(model_id, value=deposit)
    return channel_id


def domain(model_market: Any) -> VoucherDomain:
    return VoucherDomain(boa.env.evm.patch.chain_id, model_market.address)


def sign(model_market: Any, user: LocalAccount, channel_id: int, amount: int) -> Voucher:
    return domain(model_market).sign(user, channel_id, amount)


def redeem(model_market: Any, sender: str, voucher: Voucher) -> None:
    with boa.env.prank(sender):
        model_market.redeem(voucher.channel, voucher.amount, voucher.signature)
