"""The served node in two processes: an HTTP front end and a chain writer.

py-evm is pure Python, so in one process the HTTP handlers (JSON, raw
transaction decoding, signature recovery) and the miner share one GIL and a
pipelined client's sends and the blocks they feed take turns. ``serve`` therefore
forks the writer (pool, miner, SQLite commits: a ``PersistentChain``) into a
process of its own and keeps the front end here:

* reads (blocks, receipts, logs, state, ``eth_call``) are answered from the
  committed SQLite file on read-only connections, as before; a receipt becomes
  visible only after its block's commit;
* ``eth_sendRawTransaction`` is decoded and its signature recovered here; the
  writer gets the raw bytes and the sender over a pipe and runs the checks that
  need state (nonce, balance, base fee) before pooling it;
* the front end mirrors which of *its* submissions are still pooled: the writer
  reports every hash that leaves the pool (after the block's commit), so
  receipt long-polls and pending lookups need no round trip;
* pending nonces and the dev controls (``evm_mine``, time) go over the pipe.

The writer inherits the chain lock (one ``flock``'d file description shared by
both processes), so a second node on the same chain is still refused. It exits
when the pipe reaches EOF, i.e. when the front end exits or is killed, or when
its parent process changes; so no writer outlives its node.
"""
from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eth.abc import BlockHeaderAPI, SignedTransactionAPI

from databright.errors import ChainError

from ._codec import tx_json
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

from ._evm import (
    _BUILDER,
    ChainReader,
    Genesis,
    PersistentChain,
    RpcError,
    check_replacement,
    check_state,
)
from ._kv import ChainLock

__all__ = ["RemoteLedger"]

_SWITCH_INTERVAL_S = 0.0001  # the writer answers the pipe while its miner runs
_START_TIMEOUT_S = 120.0
_STOPPED = (-32000, "the chain writer has stopped", None)


def _writer_main(conn: Connection, parent_end: Connection, path: Path, genesis: Genesis,
                 lock: ChainLock, ppid: int) -> None:
    """The writer process: a ``PersistentChain`` driven by messages on ``conn``."""
    parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front end decides when to stop
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    send_lock = threading.Lock()

    def send(message: Any) -> None:
        with send_lock:
            conn.send(message)

    try:
        chain = PersistentChain(path, genesis, lock=lock)
    except BaseException as exc:  # noqa: BLE001 - reported to the front end
        send(("ready", str(exc)))
        return
    chain.on_removed = lambda hashes, accounts: send(("removed", hashes, accounts))
    send(("ready", None))

    def add(raw: bytes, sender: bytes) -> None:
        tx = _BUILDER.decode(raw)
        tx.__dict__["sender"] = sender  # recovered by the front end (a cached_property)
        try:
            chain.add(tx, sender)
        except RpcError as exc:
            # The front end accepted it on a view that was a block behind: tell
            # it the transaction was dropped, and why, so a client asking for
            # its receipt gets that reason instead of waiting for nothing.
            if not chain.is_pending(tx.hash):
                send(("dropped", bytes(tx.hash), exc.message))
                send(("removed", [bytes(tx.hash)], {}))

    def mine(timestamp: int | None) -> None:
        chain.mine(timestamp)

    def reply(req_id: int, fn: Any, args: tuple[Any, ...]) -> None:
        try:
            value = fn(*args)
        except RpcError as exc:
            message: Any = ("reply", req_id, False, (exc.code, exc.message, exc.data))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the writer
            message = ("reply", req_id, False, (-32603, f"internal error: {exc!r}", None))
        else:
            message = ("reply", req_id, True, value)
        with contextlib.suppress(OSError):
            send(message)

    inline = {"pending_nonce": chain.pending_nonce}
    threaded = {"mine": mine, "increase_time": chain.increase_time,
                "set_next_timestamp": chain.set_next_timestamp}
    clean = False
    try:
        while True:
            if not conn.poll(1.0):
                if os.getppid() != ppid:
                    break
                continue
            try:
                op, req_id, args = conn.recv()
            except (EOFError, OSError):
                break
            if op == "close":
                clean = True
                break
            if op == "add":  # fire and forget: the front end checked it already
                add(*args)
            elif op in inline:
                reply(req_id, inline[op], args)
            else:  # these wait for the block being mined: keep the pipe moving
                threading.Thread(target=reply, args=(req_id, threaded[op], args),
                                 daemon=True).start()
    finally:
        if clean:
            chain.on_removed = None
            chain.close()
        else:
            # The front end is gone: every committed block is already durable
            # (WAL), so exit at once and free the chain lock for a restart.
            os._exit(0)


class RemoteLedger(ChainReader):
    """The front end's ledger: local reads and checks, a forked writer for the rest.

    Takes over ``lock`` (already held) and releases it on ``close``.
    """

    def __init__(self, path: Path, genesis: Genesis, lock: ChainLock,
                 time_offset: int = 0) -> None:
        super().__init__(path, genesis)
        self._time_offset = time_offset
        self._next_parent: int | None = None  # the head when _next_timestamp was set
        self._lock_file = lock
        ctx = multiprocessing.get_context("fork")
        parent_end, child_end = ctx.Pipe()
        self._process = ctx.Process(
            target=_writer_main, name="databright-writer", daemon=True,
            args=(child_end, parent_end, self.path, genesis, lock, os.getpid()))
        try:
            self._process.start()
        except BaseException:
            parent_end.close()
            child_end.close()
            lock.release()
            raise
        child_end.close()
        self._conn = parent_end
        error: Any = "the chain writer did not start"
        try:
            if parent_end.poll(_START_TIMEOUT_S):
                _, error = parent_end.recv()
        except (EOFError, OSError):
            pass
        if error is not None:
            self._process.join(timeout=5)
            parent_end.close()
            lock.release()
            raise ChainError(str(error))
        self._send_lock = threading.Lock()
        self._calls: dict[int, list[Any]] = {}
        self._ids = itertools.count(1)
        self._dead = False
        self._closed = False
        self._cond = threading.Condition()
        self._pending: dict[bytes, tuple[SignedTransactionAPI, bytes]] = {}
        self._by_sender: dict[bytes, dict[int, bytes]] = {}  # sender -> nonce -> hash
        self._dropped: dict[bytes, str] = {}  # hashes the writer refused after we accepted them
        self._accounts: dict[bytes, tuple[int, int]] = {}  # (nonce, balance) at the head
        self._generation = 0  # bumped whenever the writer reports a block
        self._receiver = threading.Thread(target=self._receive_loop,
                                          name="databright-writer-pipe", daemon=True)
        self._receiver.start()

    # -- the pipe -----------------------------------------------------------------
    def _receive_loop(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "reply":
                _, req_id, ok, value = message
                with self._send_lock:
                    slot = self._calls.pop(req_id, None)
                if slot is not None:
                    slot[1] = (ok, value)
                    slot[0].set()
            elif message[0] == "dropped":
                _, tx_hash, reason = message
                with self._cond:
                    if len(self._dropped) >= 10_000:
                        self._dropped.clear()
                    self._dropped[tx_hash] = reason
            elif message[0] == "removed":
                _, hashes, accounts = message
                with self._cond:
                    for tx_hash in hashes:
                        item = self._pending.pop(tx_hash, None)
                        if item is not None:
                            queued = self._by_sender.get(item[1])
                            if queued is not None and queued.get(item[0].nonce) == tx_hash:
                                del queued[item[0].nonce]
                                if not queued:
                                    del self._by_sender[item[1]]
                    if accounts is None or accounts:
                        self._generation += 1
                        if accounts is None or len(self._accounts) > 10_000:
                            self._accounts.clear()
                        else:
                            self._accounts.update(accounts)
                    self._cond.notify_all()
        with self._send_lock:
            self._dead = True
            calls, self._calls = self._calls, {}
        for slot in calls.values():
            slot[1] = (False, _STOPPED)
            slot[0].set()
        with self._cond:
            self._pending.clear()
            self._by_sender.clear()
            self._cond.notify_all()

    def _call(self, op: str, *args: Any) -> Any:
        slot: list[Any] = [threading.Event(), None]
        with self._send_lock:
            if self._dead or self._closed:
                raise RpcError(*_STOPPED)
            req_id = next(self._ids)
            self._calls[req_id] = slot
            try:
                self._conn.send((op, req_id, args))
            except OSError:
                del self._calls[req_id]
                raise RpcError(*_STOPPED) from None
        slot[0].wait()
        ok, value = slot[1]
        if not ok:
            raise RpcError(*value)
        return value

    # -- writes -------------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Check here what the writer would (same errors), then hand it over
        without waiting: the mirror of the pool decides "already known" and
        replacements, a (nonce, balance) cache kept fresh by the writer's block
        reports decides nonce and funds."""
        if self._closed or self._dead:
            raise RpcError(-32000, "node is shutting down")
        tx, sender = self.check_raw(raw)
        head = self.head()
        check_state(tx, head.gas_limit, calculate_expected_base_fee_per_gas(head),
                    self._account(sender))
        tx_hash = bytes(tx.hash)
        with self._cond:
            if tx_hash in self._pending:
                raise RpcError(-32000, "already known")
            queued = self._by_sender.setdefault(sender, {})
            old = queued.get(tx.nonce)
            if old is not None:
                check_replacement(tx, self._pending[old][0])
                del self._pending[old]
            queued[tx.nonce] = tx_hash
            self._pending[tx_hash] = (tx, sender)
            # Sent under the mirror's lock: the writer sees submissions in order.
            with self._send_lock:
                if self._dead:
                    raise RpcError(*_STOPPED)
                try:
                    self._conn.send(("add", 0, (raw, sender)))
                except OSError:
                    raise RpcError(*_STOPPED) from None
        return tx_hash

    def _account(self, address: bytes) -> tuple[int, int]:
        with self._cond:
            cached = self._accounts.get(address)
            generation = self._generation
        if cached is not None:
            return cached
        with self.state_at(self.head()) as state:
            account = (state.get_nonce(address), state.get_balance(address))
        with self._cond:
            if self._generation == generation:  # no block report meanwhile
                self._accounts[address] = account
        return account

    def pending_nonce(self, address: bytes) -> int:
        return int(self._call("pending_nonce", address))

    def mine(self, timestamp: int | None = None) -> None:
        self._call("mine", timestamp)

    def increase_time(self, seconds: int) -> int:
        offset = int(self._call("increase_time", seconds))
        self._time_offset = offset
        return offset

    def set_next_timestamp(self, timestamp: int) -> None:
        self._call("set_next_timestamp", timestamp)
        self._next_timestamp = timestamp
        self._next_parent = self.head().block_number

    def _header_params(self, parent: BlockHeaderAPI) -> dict[str, Any]:
        # The writer forgets a set timestamp once a block used it.
        if (self._next_timestamp is not None
                and self._next_parent != self.head().block_number):
            self._next_timestamp = None
        return super()._header_params(parent)

    # -- the pool, as mirrored here ---------------------------------------------
    def is_pending(self, tx_hash: bytes) -> bool:
        with self._cond:
            return tx_hash in self._pending

    def pending_tx_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        with self._cond:
            item = self._pending.get(tx_hash)
        return None if item is None else tx_json(item[0], item[1], None, None)

    def wait_mined(self, tx_hash: bytes, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: tx_hash not in self._pending, timeout)

    def dropped(self, tx_hash: bytes) -> str | None:
        """Why the writer refused a transaction this front end had accepted, if it did."""
        with self._cond:
            return self._dropped.get(tx_hash)

    # -- shutdown -----------------------------------------------------------------
    def close(self) -> None:
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            if not self._dead:
                with contextlib.suppress(OSError):
                    self._conn.send(("close", 0, ()))
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._receiver.join(timeout=5)
        self._conn.close()
        self._lock_file.release()
