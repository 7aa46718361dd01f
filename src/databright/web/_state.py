"""What the web app shares between requests: the workspace, one write lock, signers.

Pages and the API read the index only; the chain is touched by writes (a
transaction, then ``sync``, under one lock so two requests never interleave
nonces) and by the indexer loop, which also notes the chain's clock so pages can
show the time left on a vote without asking the node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from eth_account.signers.local import LocalAccount

from databright.web._coordinator_status import StatusReader
from databright.web._limits import Limits, RateLimited, TokenBuckets
from databright.web._sessions import SessionStore
from databright.workspace import Workspace

__all__ = ["WebState"]

T = TypeVar("T")


class WebState:
    def __init__(self, ws: Workspace, limits: Limits | None = None,
                 model_servers: Mapping[int, str] | None = None, coordinator: StatusReader | None = None) -> None:
        self.ws = ws
        # Prediction servers the operator named (``serve --model-server``); others are found
        # by the URL a ``model serve`` of this home announces. Never a URL a visitor gives.
        self.model_servers = dict(model_servers or {})
        # The coordinator whose status the compute pages show (``serve --coordinator``), likewise the operator's.
        self.coordinator = coordinator or StatusReader(None)
        self.lock = threading.RLock()
        # Keys unlocked by local sign-in live here only, keyed by session id; a session's end forgets its key.
        self._signers: dict[str, LocalAccount] = {}
        self.sessions = SessionStore(on_drop=self.forget)
        limits = limits or Limits()
        self._writes = (TokenBuckets(limits.account_burst, limits.account_rate),
                        TokenBuckets(limits.client_burst, limits.client_rate))
        self._guesses = (TokenBuckets(limits.password_burst, limits.password_rate),
                         TokenBuckets(limits.password_client_burst, limits.password_client_rate))
        self._supply: dict[int, int] = {}
        self._head: tuple[float, float] = (0.0, time.time())
        self.chain_id = ws.ledger.chain_id
        self.contract = ws.market.address

    # -- chain clock and cached immutable reads ---------------------------------

    def refresh(self) -> int:
        """Sync the index with the chain and note the head's timestamp."""
        with self.lock:
            applied = self.ws.sync()
            ledger = self.ws.ledger
            block = ledger.call_rpc(lambda: ledger.w3.eth.get_block("latest"))
            self._head = (float(block["timestamp"]), time.time())
        return applied

    def now(self) -> float:
        stamp, seen = self._head
        return max(stamp + (time.time() - seen), time.time())

    def snapshot_supply(self, proposal_id: int) -> int:
        """Shares at a proposal's snapshot: fixed once the proposal exists, so cached."""
        if proposal_id not in self._supply:
            self._supply[proposal_id] = self.ws.market.snapshot_supply(proposal_id)
        return self._supply[proposal_id]

    # -- writes ------------------------------------------------------------------

    def write(self, action: Callable[[], T]) -> T:
        """Run a transaction, then bring the index up to date, under the write lock."""
        with self.lock:
            result = action()
            self.ws.sync()
            return result

    # -- rate limits -----------------------------------------------------------------

    def limit_write(self, account: str | None, client: str) -> None:
        """Charge one write to the account (if signed in) and the client address; RateLimited if either is spent."""
        accounts, clients = self._writes
        wait = max(accounts.wait(account.lower()) if account else 0.0, clients.wait(client))
        if wait == 0.0:
            wait = clients.take(client) or (accounts.take(account.lower()) if account else 0.0)
        if wait:
            raise RateLimited(f"too many requests; try again in {wait:.0f} s", wait)

    def password_guess(self, account: str, client: str) -> Callable[[], None]:
        """Charge a sign-in attempt (RateLimited if spent); call the result once the password proved right."""
        names, clients = self._guesses
        wait = max(names.wait(account), clients.wait(client))
        if wait == 0.0:
            wait = clients.take(client) or names.take(account)
        if wait:
            raise RateLimited(f"too many sign-in attempts for {account!r}; try again in {wait:.0f} s", wait)

        def refund() -> None:
            names.give_back(account)
            clients.give_back(client)

        return refund

    # -- local sign-in -------------------------------------------------------------

    def keep_signer(self, session_id: str, account: LocalAccount) -> None:
        self._signers[session_id] = account

    def signer(self, session_id: str) -> LocalAccount | None:
        return self._signers.get(session_id)

    def forget(self, session_id: str) -> None:
        self._signers.pop(session_id, None)
