"""Vouchers: EIP-712 digests, fast signer recovery, the header form, and the
durable store's compare-and-set."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from databright.errors import PaymentError
from databright.models import PaymentRequired, Voucher, VoucherDomain, VoucherStore

CONTRACT = "0x" + "ab" * 20
USER = Account.from_key(b"\x07" * 32)
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_digest_is_eip712() -> None:
    domain = VoucherDomain(31415, CONTRACT)
    signable = encode_typed_data(full_message=domain.typed_data(3, 10**18))
    from eth_hash.auto import keccak

    assert domain.digest(3, 10**18) == keccak(b"\x19" + signable.version + signable.header + signable.body)
    voucher = domain.sign(USER, 3, 10**18)
    assert domain.signer(voucher) == USER.address
    assert Account.recover_message(signable, signature=voucher.signature) == USER.address


def test_signer_rejects_tampering() -> None:
    domain = VoucherDomain(31415, CONTRACT)
    voucher = domain.sign(USER, 3, 100)
    assert domain.signer(Voucher(3, 101, voucher.signature)) != USER.address
    assert VoucherDomain(1, CONTRACT).signer(voucher) != USER.address
    r, s, v = voucher.signature[:32], int.from_bytes(voucher.signature[32:64], "big"), voucher.signature[64]
    twin = r + (N - s).to_bytes(32, "big") + bytes([55 - v])  # same signer, malleable form
    with pytest.raises(PaymentError, match="invalid voucher signature"):
        domain.signer(Voucher(3, 100, twin))
    with pytest.raises(PaymentError, match="invalid voucher signature"):
        domain.signer(Voucher(3, 100, voucher.signature[:64] + b"\x05"))
    with pytest.raises(PaymentError, match="65 bytes"):
        domain.signer(Voucher(3, 100, b"\x01" * 64))


@pytest.mark.parametrize("text", ["", "1:2", "a:2:0x00", "1:2:zz", "0:2:0x" + "11" * 65, "1:-1:0x" + "11" * 65,
                                  "1:2:0x" + "11" * 64, f"1:{2**256}:0x" + "11" * 65])
def test_header_rejects(text: str) -> None:
    with pytest.raises(PaymentError):
        Voucher.from_header(text)


def test_header_round_trip() -> None:
    voucher = VoucherDomain(31415, CONTRACT).sign(USER, 12, 34)
    assert Voucher.from_header(voucher.to_header()) == voucher


def test_verification_under_a_millisecond() -> None:
    domain = VoucherDomain(31415, CONTRACT)
    vouchers = [domain.sign(USER, 1, amount) for amount in range(1, 201)]
    times = []
    for voucher in vouchers:
        start = time.perf_counter()
        assert domain.signer(voucher) == USER.address
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 1e-3, f"median {statistics.median(times) * 1e6:.0f} µs"


def test_store_keeps_the_latest_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    store = VoucherStore(path)
    domain = VoucherDomain(31415, CONTRACT)
    store.accept(domain.sign(USER, 5, 10), cost=10, floor=0)
    with pytest.raises(PaymentRequired) as info:
        store.accept(domain.sign(USER, 5, 15), cost=10, floor=0)
    assert (info.value.owed, info.value.previous) == (20, 10)
    store.accept(domain.sign(USER, 5, 20), cost=10, floor=0)
    store.close()
    reopened = VoucherStore(path)
    stored = reopened.get(5)
    assert stored is not None and (stored.amount, stored.redeemed) == (20, 0)
    assert domain.signer(stored.voucher()) == USER.address
    reopened.mark_redeemed(5, 20)
    assert reopened.unredeemed() == []
    with pytest.raises(PaymentRequired):  # the chain's redeemed amount is a floor
        reopened.accept(domain.sign(USER, 6, 10), cost=10, floor=5)


def test_store_pays_each_increase_once(tmp_path: Path) -> None:
    store = VoucherStore(tmp_path / "v.sqlite")
    domain = VoucherDomain(31415, CONTRACT)
    voucher = domain.sign(USER, 1, 10)
    accepted: list[bool] = []

    def attempt() -> None:
        try:
            store.accept(voucher, cost=10, floor=0)
            accepted.append(True)
        except PaymentRequired:
            accepted.append(False)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == [False] * 7 + [True]
