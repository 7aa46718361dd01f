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
  writer gets the raw bytes and the sender over a pipe, runs the checks that
  need state (nonce, balance and pooled spending, base fee), journals it in the
  chain's SQLite file and pools it; only its acknowledgement lets the front end
  return the hash, so an acknowledged transaction survives ``kill -9``;
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
from ._evm import (
    _BUILDER,
    ChainReader,
    Genesis,
    PersistentChain,
    RpcError,
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
    chain.on_removed = lambda hashes: send(("removed", hashes))
    send(("ready", None))

    def add(req_id: int, raw: bytes, sender: bytes) -> None:
        tx = _BUILDER.decode(raw)
        tx.__dict__["sender"] = sender  # recovered by the front end (a cached_property)
        tx_hash = bytes(tx.hash)
        try:
            # Acknowledged from inside the pool lock: the front end learns it was
            # pooled (and journaled) before it can learn it was mined.
            chain.add(tx, sender, lambda ready: send(("reply", req_id, True, (tx_hash, ready))))
        except RpcError as exc:
            send(("reply", req_id, False, (exc.code, exc.message, exc.data)))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the writer
            send(("reply", req_id, False, (-32603, f"internal error: {exc!r}", None)))

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
            if op == "add":  # in order, on this thread: the pool is quick
                add(req_id, *args)
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
        self._ready: set[bytes] = set()  # pooled without a nonce gap before them
        self._mirror_journal()
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
                    if ok and slot[2] is not None:  # an add: (hash, no nonce gap)
                        value, ready = value
                        tx, sender = slot[2]
                        self._mirror(tx, sender, ready)
                    slot[1] = (ok, value)
                    slot[0].set()
            elif message[0] == "removed":
                _, hashes = message
                with self._cond:
                    for tx_hash in hashes:
                        self._ready.discard(tx_hash)
                        item = self._pending.pop(tx_hash, None)
                        if item is not None:
                            queued = self._by_sender.get(item[1])
                            if queued is not None and queued.get(item[0].nonce) == tx_hash:
                                del queued[item[0].nonce]
                                if not queued:
                                    del self._by_sender[item[1]]
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
            self._ready.clear()
            self._cond.notify_all()

    def _call(self, op: str, *args: Any,
              pooled: tuple[SignedTransactionAPI, bytes] | None = None) -> Any:
        """Ask the writer and wait; ``pooled``: the transaction an ``add`` pools,
        mirrored by the receiving thread as the acknowledgement arrives."""
        slot: list[Any] = [threading.Event(), None, pooled]
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
        """Decode and recover the sender here, then wait for the writer to check
        it against the state, journal and pool it: only then is the hash
        returned, so an acknowledged transaction survives ``kill -9``."""
        if self._closed or self._dead:
            raise RpcError(-32000, "node is shutting down")
        tx, sender = self.check_raw(raw)
        return bytes(self._call("add", raw, sender, pooled=(tx, sender)))

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
    def _mirror_journal(self) -> None:
        """Mirror what the writer pooled again from its journal when it started
        (before the pipe is read: a later report of its removal then applies)."""
        for sender, raw in self.query("SELECT sender, raw FROM pool ORDER BY seq"):
            tx = _BUILDER.decode(raw)
            tx.__dict__["sender"] = sender  # recovered when it was first accepted
            self._mirror(tx, sender, ready=True)  # as good a guess as any: wait for it

    def _mirror(self, tx: SignedTransactionAPI, sender: bytes, ready: bool) -> None:
        """Record a transaction the writer pooled (on the receiving thread, so
        before any later report that it left the pool); ``ready``: it had no
        nonce gap before it then."""
        tx_hash = bytes(tx.hash)
        with self._cond:
            if ready:
                self._ready.add(tx_hash)
            queued = self._by_sender.setdefault(sender, {})
            old = queued.get(tx.nonce)
            if old is not None:
                self._pending.pop(old, None)
                self._ready.discard(old)
            queued[tx.nonce] = tx_hash
            self._pending[tx_hash] = (tx, sender)
        self.note_arrival(tx_hash)

    def is_pending(self, tx_hash: bytes) -> bool:
        with self._cond:
            return tx_hash in self._pending

    def is_executable(self, tx_hash: bytes) -> bool:
        """From the mirror alone (no state read): the transaction, or one of the
        same sender's just below it without a gap, had no nonce gap when pooled."""
        with self._cond:
            item = self._pending.get(tx_hash)
            if item is None:
                return False
            queued = self._by_sender.get(item[1], {})
            nonce = item[0].nonce
            while nonce in queued:
                if queued[nonce] in self._ready:
                    return True
                nonce -= 1
            return False

    def pending_tx_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        with self._cond:
            item = self._pending.get(tx_hash)
        return None if item is None else tx_json(item[0], item[1], None, None)

    def wait_mined(self, tx_hash: bytes, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: tx_hash not in self._pending, timeout)

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
