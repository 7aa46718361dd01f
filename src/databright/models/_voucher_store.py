"""The prediction server's durable record of the latest voucher per channel.

A voucher is money only the owner can claim, and only the latest one matters,
so the server writes it here — one SQLite transaction, fsync'd before the
commit returns (WAL with ``synchronous=FULL``) — before it answers the request
that carried it. A ``kill -9`` at any moment therefore loses at most a
request that was never answered, never a voucher the server acted on; with
the fsync, neither does a crash of the machine. ``fsync=False`` (WAL with
``synchronous=NORMAL``) keeps the first guarantee only: the commit is in the
operating system's hands, which survives the server's death but not the
machine's, and saves the disk's flush time (~5 ms here) on every request.

Accepting is a compare-and-set in one ``BEGIN IMMEDIATE`` transaction, so two
concurrent requests on one channel cannot both be paid by the same increase.
Amounts are stored as decimal text: they are 256-bit integers.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from databright.errors import PaymentError
from databright.models._voucher import Voucher

__all__ = ["PaymentRequired", "StoredVoucher", "VoucherStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vouchers (
    channel_id TEXT PRIMARY KEY,
    amount TEXT NOT NULL,
    signature BLOB NOT NULL,
    redeemed TEXT NOT NULL,
    unredeemed_since REAL,
    updated_at REAL NOT NULL
)
"""


class PaymentRequired(PaymentError):
    """A request's voucher does not pay for it; ``owed`` is the cumulative amount it must reach."""

    def __init__(self, message: str, *, channel: int | None = None, owed: int | None = None,
                 previous: int | None = None) -> None:
        super().__init__(message)
        self.channel = channel
        self.owed = owed
        self.previous = previous


@dataclass(frozen=True)
class StoredVoucher:
    channel: int
    amount: int
    signature: bytes
    redeemed: int
    unredeemed_since: float | None

    @property
    def unredeemed(self) -> int:
        return self.amount - self.redeemed

    def voucher(self) -> Voucher:
        return Voucher(self.channel, self.amount, self.signature)


class VoucherStore:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, channel: int) -> StoredVoucher | None:
        row = self._db.execute(
            "SELECT amount, signature, redeemed, unredeemed_since FROM vouchers WHERE channel_id = ?",
            (str(channel),),
        ).fetchone()
        if row is None:
            return None
        return StoredVoucher(channel, int(row[0]), bytes(row[1]), int(row[2]), row[3])

    def get(self, channel: int) -> StoredVoucher | None:
        with self._lock:
            return self._row(channel)

    def accept(self, voucher: Voucher, cost: int, floor: int) -> StoredVoucher:
        """Store ``voucher`` if it adds at least ``cost`` to the latest one (or to
        ``floor``, what the chain says was redeemed); raises PaymentRequired otherwise."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._row(voucher.channel)
                previous = max(floor, current.amount if current else 0)
                redeemed = max(floor, current.redeemed if current else 0)
                if voucher.amount < previous + cost:
                    raise PaymentRequired(
                        f"voucher for channel {voucher.channel} pays {voucher.amount} wei in total; "
                        f"this request needs {previous + cost}",
                        channel=voucher.channel, owed=previous + cost, previous=previous,
                    )
                now = time.time()
                since = current.unredeemed_since if current and current.unredeemed_since else now
                self._db.execute(
                    "INSERT INTO vouchers (channel_id, amount, signature, redeemed, unredeemed_since, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE SET amount = excluded.amount, "
                    "signature = excluded.signature, redeemed = excluded.redeemed, "
                    "unredeemed_since = excluded.unredeemed_since, updated_at = excluded.updated_at",
                    (str(voucher.channel), str(voucher.amount), voucher.signature, str(redeemed), since, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return StoredVoucher(voucher.channel, voucher.amount, voucher.signature, redeemed, since)

    def mark_redeemed(self, channel: int, amount: int) -> None:
        """Record that the chain has paid ``amount`` in total on ``channel``."""
        with self._lock:
            current = self._row(channel)
            if current is None or amount <= current.redeemed:
                return
            since = None if amount >= current.amount else time.time()
            self._db.execute(
                "UPDATE vouchers SET redeemed = ?, unredeemed_since = ?, updated_at = ? WHERE channel_id = ?",
                (str(amount), since, time.time(), str(channel)),
            )

    def unredeemed(self) -> list[StoredVoucher]:
        """Every channel whose latest voucher pays more than the chain has paid."""
        with self._lock:
            rows = self._db.execute("SELECT channel_id FROM vouchers WHERE unredeemed_since IS NOT NULL").fetchall()
            found = [self._row(int(r[0])) for r in rows]
        return [v for v in found if v is not None and v.unredeemed > 0]
