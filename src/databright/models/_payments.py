"""Taking payment for predictions: checking vouchers and redeeming them.

:class:`PaymentGate` decides whether a request's voucher pays for it: the
signature must be the channel's user's, the channel must be this model's and
still redeemable for a while, the cumulative amount must add at least the
price of the request to the latest voucher and stay within the deposit. The
channel is read from the chain and cached: its deposit only grows while it is
open, so a cached deposit is a safe lower bound and is re-read only when a
voucher asks for more. A cached channel is re-read after ``ttl`` seconds to see
a close; a closing channel takes no more vouchers and its latest one is
redeemed at once. The safety margin is the challenge period (a day by
default) against ``ttl`` (seconds): a close is seen and redeemed long before
the owner's last voucher would stop paying.

:class:`Redeemer` is the owner's background worker: it redeems a channel's
latest voucher once it holds ``threshold`` wei unredeemed, once the oldest
unredeemed payment is ``deadline`` seconds old, or as soon as the channel is
closing. It works from the durable :class:`VoucherStore`, so a restart picks up
exactly what was left.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from databright.chain.modelmarket import Channel, ModelMarket
from databright.errors import DataBrightError, NotFound, PaymentError, TransactionError
from databright.models._voucher import Voucher, VoucherDomain
from databright.models._voucher_store import PaymentRequired, StoredVoucher, VoucherStore

__all__ = ["PaymentGate", "Redeemer"]

log = logging.getLogger(__name__)


@dataclass
class _Cached:
    channel: Channel
    fetched_at: float


class PaymentGate:
    def __init__(self, market: ModelMarket, model_id: int, store: VoucherStore, *, ttl: float = 5.0) -> None:
        self.market = market
        self.model_id = model_id
        self.store = store
        self.ttl = ttl
        self.domain = VoucherDomain(market.ledger.chain_id, market.address)
        self._lock = threading.Lock()
        self._channels: dict[int, _Cached] = {}
        self._price: tuple[int, float] | None = None

    def price(self) -> int:
        """The model's current price per prediction (re-read every ``ttl`` seconds)."""
        now = time.monotonic()
        with self._lock:
            cached = self._price
        if cached is None or now - cached[1] > self.ttl:
            cached = (self.market.model(self.model_id).price, now)
            with self._lock:
                self._price = cached
        return cached[0]

    def channel(self, channel_id: int, *, need: int = 0) -> Channel:
        """The channel, from the cache unless stale or its deposit is below ``need``."""
        now = time.monotonic()
        with self._lock:
            cached = self._channels.get(channel_id)
        if cached is None or now - cached.fetched_at > self.ttl or cached.channel.deposit < need:
            try:
                fresh = self.market.channel(channel_id)
            except NotFound as exc:
                raise PaymentError(f"channel {channel_id} does not exist") from exc
            cached = _Cached(fresh, now)
            with self._lock:
                self._channels[channel_id] = cached
        return cached.channel

    def closing(self, channel: Channel) -> bool:
        return channel.state != "open"

    def charge(self, voucher: Voucher | None, predictions: int) -> StoredVoucher | None:
        """Accept and durably store the voucher paying for ``predictions``; None if they are free."""
        cost = self.price() * predictions
        if cost == 0:
            return None
        if voucher is None:
            raise PaymentRequired(
                f"this request costs {cost} wei; send a voucher for a channel to model {self.model_id}", owed=cost
            )
        signer = self.domain.signer(voucher)
        channel = self.channel(voucher.channel, need=voucher.amount)
        if channel.model_id != self.model_id:
            raise PaymentError(f"channel {channel.channel_id} pays model {channel.model_id}, not {self.model_id}")
        if signer != channel.user:
            raise PaymentError(f"voucher not signed by the user of channel {channel.channel_id}")
        if self.closing(channel):
            raise PaymentError(f"channel {channel.channel_id} is closing; open a new one")
        if voucher.amount > channel.deposit:
            raise PaymentRequired(
                f"voucher pays {voucher.amount} wei but channel {channel.channel_id} holds {channel.deposit}; "
                "top it up", channel=channel.channel_id, owed=voucher.amount, previous=None,
            )
        return self.store.accept(voucher, cost, channel.redeemed)


class Redeemer:
    """Redeems stored vouchers on-chain in a background thread."""

    def __init__(self, gate: PaymentGate, owner: LocalAccount, *, threshold: int, deadline: float,
                 interval: float = 1.0) -> None:
        self.gate = gate
        self.owner = owner
        self.threshold = threshold
        self.deadline = deadline
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, stored: StoredVoucher) -> bool:
        if stored.unredeemed >= self.threshold:
            return True
        if stored.unredeemed_since is not None and time.time() - stored.unredeemed_since >= self.deadline:
            return True
        return self.gate.closing(self.gate.channel(stored.channel))

    def redeem(self, stored: StoredVoucher) -> bool:
        """Redeem one stored voucher now; returns whether the chain paid it."""
        market, store = self.gate.market, self.gate.store
        try:
            market.redeem(self.owner, stored.channel, stored.amount, stored.signature)
        except TransactionError as exc:
            # Someone else may have submitted it already (anyone may): the
            # chain is the judge of what was paid.
            paid = market.channel(stored.channel).redeemed
            store.mark_redeemed(stored.channel, paid)
            log.warning("redeeming channel %s: %s (chain has paid %s)", stored.channel, exc, paid)
            return False
        store.mark_redeemed(stored.channel, stored.amount)
        return True

    def run_once(self, *, force: bool = False) -> int:
        """Redeem every voucher that is due (all of them with ``force``); returns how many."""
        done = 0
        for stored in self.gate.store.unredeemed():
            try:
                if (force or self.due(stored)) and self.redeem(stored):
                    done += 1
            except DataBrightError as exc:
                log.warning("cannot redeem channel %s yet: %s", stored.channel, exc)
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="redeemer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
