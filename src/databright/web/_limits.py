"""Rate limits: token buckets per account and per client address, kept in the app's state.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; an
action takes one token, and when none is left it is refused with how long to
wait (HTTP 429 with ``Retry-After``). Writes are limited per signed-in account
and, more loosely, per client address (several people may share one, as on a
local dashboard); failed password guesses per account name and per client.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from databright.errors import InputError

__all__ = ["Limits", "RateLimited", "TokenBuckets"]


class RateLimited(InputError):
    """Too many requests; ``retry_after`` says in how many seconds to try again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Limits:
    """Bucket sizes (``burst``) and refill rates (per second) of the app's limits."""

    account_burst: int = 20
    account_rate: float = 1.0
    client_burst: int = 120
    client_rate: float = 10.0
    password_burst: int = 5
    password_rate: float = 1 / 12  # five failed guesses a minute per account, after the first five
    password_client_burst: int = 20
    password_client_rate: float = 1 / 3


class TokenBuckets:
    """One token bucket per key, all of the same size and rate; idle full buckets are forgotten."""

    def __init__(self, burst: int, rate: float, *, max_keys: int = 100_000) -> None:
        self.burst = burst
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 if it has one now); takes nothing."""
        with self._lock:
            level = self._level(key, time.monotonic())
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def take(self, key: str) -> float:
        """Take a token for ``key``; returns 0, or the seconds to wait if there was none (nothing taken)."""
        now = time.monotonic()
        with self._lock:
            level = self._level(key, now)
            if level < 1:
                return (1 - level) / self.rate
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            self._buckets[key] = (level - 1, now)
        return 0.0

    def give_back(self, key: str) -> None:
        """Return a token taken for an action that turned out not to count (a correct password)."""
        now = time.monotonic()
        with self._lock:
            self._buckets[key] = (min(float(self.burst), self._level(key, now) + 1), now)

    def _forget_full(self, now: float) -> None:
        full = [k for k in self._buckets if self._level(k, now) >= self.burst]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]
