"""A persistent py-evm chain in one SQLite file, with a pool and a single miner.

The SQLite file (``_kv``): py-evm's key/value store plus ``blocks``, ``txs`` and
``logs`` tables, a JSON-RPC view written in the *same* SQLite transaction as the
block, so receipts, blocks and ``eth_getLogs`` are answered with one indexed
query instead of trie walks. JSON shapes and the block tries are in ``_codec``.

Durability: every block is one SQLite transaction in WAL mode with
``synchronous=NORMAL``. A committed block survives ``kill -9`` of this process
(the OS already holds the WAL pages); only a power loss or kernel crash may drop
the last blocks, which is the trade geth and anvil make as well. A transaction
leaves the pool (and its receipt becomes visible) only after that commit.

Concurrency: one lock guards the py-evm objects (they are not thread-safe); the
miner thread takes *all* executable pooled transactions into one block as soon
as the pool is non-empty, so pipelined clients get many transactions per block.

Per-block costs kept off the hot path: submissions check nonce and balance
against a (nonce, balance) cache that survives blocks (only accounts a block
touched are re-read, from the miner's live state); a submitted transaction's
signature is recovered once; decoded trie nodes are cached by content
(``_codec``); WAL checkpoints run on their own thread (``_kv``).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import heapq
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import rlp
from eth._utils.address import generate_contract_address
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.chains.base import Chain
from eth.constants import BLANK_ROOT_HASH, SECPK1_N
from eth.db.atomic import AtomicDB
from eth.exceptions import PyEVMError
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.constants import (
    CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
    DEPOSIT_CONTRACT_ADDRESS,
    WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
)
from eth_hash.auto import keccak
from eth_typing import Address, BlockNumber
from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.exceptions import ValidationError
from pydantic import BaseModel, field_validator

from databright.errors import ChainError

from ._codec import (
    base_fee,
    checksum,
    effective_price,
    hb,
    header_json,
    hx,
    trie_root_and_nodes,
    legacy_v,
    tx_json,
)
from ._kv import ChainLock, ReadOnlyKV, SQLiteKV, connect_read_only, damaged, immediate, publish

__all__ = ["ChainError", "ChainReader", "Genesis", "PersistentChain", "RpcError", "genesis_block_hash",
           "hb", "hx", "trie_root_and_nodes"]

_GENESIS_KEY = b"databright:genesis"
_TIME_OFFSET_KEY = b"databright:time-offset"
ZERO_ADDRESS = b"\x00" * 20
_EMPTY_REQUESTS_HASH = hashlib.sha256().digest()
_REQUEST_CONTRACTS = (DEPOSIT_CONTRACT_ADDRESS, WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                      CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS)
_REQUEST_CONTRACT_SET = frozenset(_REQUEST_CONTRACTS)
_ARRIVALS_KEPT = 10_000
_RETRY_S = 0.5  # after a block the database refused
DEFAULT_PRIORITY_FEE = 1_000_000_000  # 1 gwei, what geth and anvil suggest on dev chains


class RpcError(ChainError):
    """An error with a JSON-RPC code, raised by the ledger and shown to clients."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _parse_wei(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("balance must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    raise ValueError(f"not a wei amount: {value!r}")


class Genesis(BaseModel):
    """The first block: chain id, funded accounts, gas limit and time."""

    chain_id: int
    alloc: dict[str, int] = {}
    gas_limit: int = 30_000_000
    timestamp: int = 0

    @field_validator("alloc", mode="before")
    @classmethod
    def _checksum_alloc(cls, value: Mapping[str, Any]) -> dict[str, int]:
        return {to_checksum_address(addr): _parse_wei(wei) for addr, wei in value.items()}

    @classmethod
    def load(cls, path: Path) -> Genesis:
        return cls.model_validate_json(Path(path).read_text())

    def save(self, path: Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")


def _invalid_in_block(state: Any, tx: SignedTransactionAPI, sender: bytes, gas_limit: int,
                      fee: int) -> str | None:
    """Why ``tx`` cannot run on ``state`` now (None: it can), checked before
    py-evm applies it: py-evm validates only after it has locked the state's
    checkpoints, so a failure there could not be rolled back."""
    account = (state.get_nonce(Address(sender)), state.get_balance(Address(sender)))
    try:
        check_state(tx, gas_limit, fee, account)
        check_fee_caps(tx.max_priority_fee_per_gas, tx.max_fee_per_gas)
        state.validate_transaction(tx)
    except RpcError as exc:
        return exc.message
    except ValidationError as exc:
        return f"invalid transaction: {exc}"
    return None


class _Unsealable(Exception):
    """A block could not be sealed or stored for a reason other than the database's."""

    def __init__(self, items: list[_Pooled]) -> None:
        super().__init__(f"{len(items)} transactions")
        self.items = items


class _Poisoned(Exception):
    """A transaction failed inside py-evm after passing ``_invalid_in_block``."""

    def __init__(self, item: _Pooled, reason: str) -> None:
        super().__init__(reason)
        self.item = item
        self.reason = reason


@dataclass(order=True)
class _Pooled:
    seq: int
    tx: SignedTransactionAPI = field(compare=False)
    sender: bytes = field(compare=False)


class ChainReader:
    """Reads of the committed chain from any thread (or process), plus the
    stateless transaction checks; ``PersistentChain`` adds the pool and miner."""

    def __init__(self, path: Path, genesis: Genesis) -> None:
        self.path = Path(path)
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._chain_class = _chain_class(genesis.chain_id)
        self._local = threading.local()
        self._time_offset = 0
        self._next_timestamp: int | None = None
        # hashes accepted into the pool, numbered, for pending-transaction filters
        self._arrivals: collections.deque[tuple[int, bytes]] = collections.deque(
            maxlen=_ARRIVALS_KEPT)
        self._arrival_count = 0
        self._arrivals_lock = threading.Lock()

    def note_arrival(self, tx_hash: bytes) -> None:
        with self._arrivals_lock:
            self._arrival_count += 1
            self._arrivals.append((self._arrival_count, tx_hash))

    def arrivals(self, since: int | None) -> tuple[int, list[bytes]]:
        """The newest arrival's number, and the hashes that arrived after ``since``
        (None: just the number, to start from)."""
        with self._arrivals_lock:
            if since is None:
                return self._arrival_count, []
            return self._arrival_count, [h for n, h in self._arrivals if n > since]

    # -- reads -----------------------------------------------------------------
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the index tables on this thread's own connection (WAL: no blocking)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_read_only(self.path)  # never creates a missing file
            self._local.conn = conn
        return conn.execute(sql, args).fetchall()

    def head(self) -> BlockHeaderAPI:
        """The latest committed block, as this thread's readers see it.

        Read from the database rather than the miner's memory, so a client that
        has seen a receipt also sees its block as the head.
        """
        return self._reader().get_canonical_head()

    def _reader(self) -> Chain:
        """This thread's chain over a read-only connection (see ``ReadOnlyKV``)."""
        reader = getattr(self._local, "chain", None)
        if reader is None:
            reader = self._local.chain = self._chain_class(AtomicDB(ReadOnlyKV(self.path)))
        return cast(Chain, reader)

    def header_at(self, number: int) -> BlockHeaderAPI:
        return self._reader().get_canonical_block_header_by_number(BlockNumber(number))

    @contextlib.contextmanager
    def state_at(self, header: BlockHeaderAPI) -> Iterator[Any]:
        yield self._reader().get_vm(header).state

    def next_base_fee(self) -> int:
        return calculate_expected_base_fee_per_gas(self.head())

    def view(self) -> Chain:
        """This thread's py-evm chain over the committed blocks (read-only)."""
        return self._reader()

    def pending_header(self) -> BlockHeaderAPI:
        """The header the next block would get now: the context of ``pending`` calls."""
        head = self.head()
        return self._reader().create_header_from_parent(head, **self._header_params(head))

    def _header_params(self, parent: BlockHeaderAPI) -> dict[str, Any]:
        now = int(time.time()) + self._time_offset
        timestamp = self._next_timestamp or max(now, parent.timestamp + 1)
        return {"timestamp": timestamp, "gas_limit": parent.gas_limit, "difficulty": 0,
                "coinbase": ZERO_ADDRESS, "nonce": b"\x00" * 8,
                "mix_hash": keccak(parent.hash)}

    def check_raw(self, raw: bytes) -> tuple[SignedTransactionAPI, bytes]:
        """Decode a signed transaction and run the checks that need no state:
        chain id, type, signature (recovered once), intrinsic gas, field rules."""
        try:
            tx = _BUILDER.decode(raw)
        except Exception as exc:  # noqa: BLE001 - any malformed input, rlp or typed
            raise RpcError(-32602, f"invalid raw transaction: {exc}") from exc
        type_id = tx.type_id or 0
        v = legacy_v(tx) if type_id == 0 else 0
        chain_id = ((v - 35) // 2 if v >= 35 else None) if type_id == 0 else tx.chain_id
        if chain_id is not None and chain_id != self.chain_id:
            raise RpcError(-32000, f"invalid chain id {chain_id}, expected {self.chain_id}")
        if type_id == 3:
            raise RpcError(-32003, "blob transactions are not supported")
        try:
            # One recovery (coincurve-backed): ``check_signature_validity`` would
            # recover the key a second time and verify the signature against the
            # key it was just recovered from, which cannot fail.
            sender = tx.sender
        except Exception as exc:  # noqa: BLE001 - bad r, s or v
            raise RpcError(-32000, f"invalid sender: {exc}") from exc
        if not 0 < tx.s <= SECPK1_N // 2:  # EIP-2; py-evm would only see it in the miner
            raise RpcError(-32000, "invalid sender: invalid transaction v, r, s values")
        if tx.gas < tx.intrinsic_gas:
            raise RpcError(-32000, f"intrinsic gas too low: have {tx.gas}, "
                                   f"want {tx.intrinsic_gas}")
        check_fee_caps(tx.max_priority_fee_per_gas, tx.max_fee_per_gas)
        try:
            tx.validate()
        except ValidationError as exc:
            raise RpcError(-32000, f"invalid transaction: {exc}") from exc
        return tx, sender

    # -- what needs the writer (see PersistentChain and _split.RemoteLedger) ------
    def submit(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def pending_nonce(self, address: bytes) -> int:
        raise NotImplementedError

    def is_pending(self, tx_hash: bytes) -> bool:
        raise NotImplementedError

    def pending_tx_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        raise NotImplementedError

    def is_executable(self, tx_hash: bytes) -> bool:
        """Whether a pooled transaction can go into the next block (no nonce gap)."""
        raise NotImplementedError

    def wait_mined(self, tx_hash: bytes, timeout: float) -> None:
        raise NotImplementedError

    def dropped(self, tx_hash: bytes) -> str | None:
        """Why an accepted transaction was later dropped from the pool (None: it was not).

        Recorded in the ``dropped`` table by the writer, durably, so the answer
        survives restarts."""
        rows = self.query("SELECT reason FROM dropped WHERE hash = ?", (tx_hash,))
        return str(rows[0][0]) if rows else None

    def increase_time(self, seconds: int) -> int:
        raise NotImplementedError

    def set_next_timestamp(self, timestamp: int) -> None:
        raise NotImplementedError

    def mine(self, timestamp: int | None = None) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def check_fee_caps(tip: int, fee_cap: int, sender: bytes | None = None) -> None:
    """EIP-1559: the tip is part of the fee, so it cannot be above the cap."""
    if tip > fee_cap:
        message = "max priority fee per gas higher than max fee per gas"
        if sender is not None:  # geth's wording for calls, which have no pool
            message += (f": address {checksum(sender)}, maxPriorityFeePerGas: {tip}, "
                        f"maxFeePerGas: {fee_cap}")
        raise RpcError(-32000, message)


def tx_cost(tx: SignedTransactionAPI) -> int:
    """What a sender must hold for ``tx``: its whole gas at the fee cap, plus value."""
    return tx.gas * tx.max_fee_per_gas + tx.value


def queued_cost(queued: Mapping[int, SignedTransactionAPI], nonce: int, replacing: int) -> int:
    """The cost of a sender's pooled transactions from ``nonce`` on, except the one
    at nonce ``replacing`` (which a new transaction would replace)."""
    return sum(tx_cost(tx) for n, tx in queued.items() if n >= nonce and n != replacing)


def check_state(tx: SignedTransactionAPI, gas_limit: int, base_fee: int,
                account: tuple[int, int], pooled: int = 0) -> None:
    """The pool's checks against the latest block: gas limit, base fee, nonce, funds.

    ``pooled`` is what the sender's other pooled transactions may spend first: two
    transactions each affordable alone must not both be accepted (geth's overdraft
    check), or the second could only fail inside a block."""
    if tx.gas > gas_limit:
        raise RpcError(-32000, "exceeds block gas limit")
    if tx.max_fee_per_gas < base_fee:
        raise RpcError(-32000, f"max fee per gas less than block base fee: "
                               f"maxFeePerGas: {tx.max_fee_per_gas}, baseFee: {base_fee}")
    nonce, balance = account
    if tx.nonce < nonce:
        raise RpcError(-32003, f"nonce too low: next nonce {nonce}, tx nonce {tx.nonce}")
    cost = tx_cost(tx)
    if balance < cost:
        raise RpcError(-32003, f"insufficient funds for gas * price + value: "
                               f"balance {balance}, tx cost {cost}")
    if balance < pooled + cost:
        raise RpcError(-32003, f"insufficient funds for gas * price + value: "
                               f"balance {balance}, queued cost {pooled}, tx cost {cost}")


def check_replacement(tx: SignedTransactionAPI, old: SignedTransactionAPI) -> None:
    if tx.max_fee_per_gas < old.max_fee_per_gas * 11 // 10:
        raise RpcError(-32003, "replacement transaction underpriced")  # anvil's code


def _chain_class(chain_id: int) -> type[Chain]:
    return cast(type[Chain], type(
        "DataBrightChain", (Chain,),
        {"vm_configuration": ((0, PragueVM),), "chain_id": chain_id},
    ))


_BUILDER = PragueVM.get_transaction_builder()


def _genesis_header(genesis: Genesis) -> dict[str, Any]:
    return {"difficulty": 0, "gas_limit": genesis.gas_limit, "timestamp": genesis.timestamp,
            "coinbase": ZERO_ADDRESS, "nonce": b"\x00" * 8, "mix_hash": b"\x00" * 32, "extra_data": b""}


def _build_genesis(db: AtomicDB, genesis: Genesis) -> Chain:
    return cast(Chain, _chain_class(genesis.chain_id).from_genesis(db, _genesis_header(genesis), {
        to_canonical_address(a): {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
        for a, wei in genesis.alloc.items()
    }))


def genesis_block_hash(genesis: Genesis) -> bytes:
    """The hash of the first block ``genesis`` makes (built in memory)."""
    return bytes(_build_genesis(AtomicDB(), genesis).get_canonical_head().hash)


class PersistentChain(ChainReader):
    """The chain, its pool and its miner. Every method is thread-safe.

    Two locks, always taken in this order: ``_lock`` guards the py-evm objects
    (held by the miner for a whole block), ``_pool_lock`` guards the pool and the
    per-sender (nonce, balance) cache, so submissions never wait for a block to be
    mined: they land in the pool and the next block takes them all.
    """

    def __init__(self, path: Path, genesis: Genesis, lock: ChainLock | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, genesis)
        self._lock_file = lock or ChainLock(path.with_name(path.name + ".lock"))
        try:
            if not path.exists():
                self._create_chain(path)
            self.kv = SQLiteKV(path)
            self._open_chain()
            # The pool's journal: written between block commits, on a connection
            # of its own (see _journal_write).
            self._journal = sqlite3.connect(path, isolation_level=None, timeout=60,
                                            check_same_thread=False)
            # as durable as a block (see _kv): survives kill -9, no fsync per send
            self._journal.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            self._lock_file.release()
            raise damaged(path, exc) from None
        except BaseException:
            self._lock_file.release()
            raise
        # called (under the pool lock) with hashes that left the pool
        self.on_removed: Callable[[list[bytes]], None] | None = None
        self._removed: list[bytes] = []
        self._lock = threading.RLock()
        self._pool_lock = threading.Lock()
        self._cond = threading.Condition(self._pool_lock)
        self._pool: dict[bytes, dict[int, _Pooled]] = {}
        self._by_hash: dict[bytes, _Pooled] = {}
        self._accounts: dict[bytes, tuple[int, int]] = {}  # at self._head
        self._seq = itertools.count()
        self._head: BlockHeaderAPI = self.chain.get_canonical_head()
        self._time_offset = int(self.kv.get(_TIME_OFFSET_KEY, b"0"))
        self._touched: set[bytes] | None = None  # accounts the block being built changed
        self._request_code: bool | None = None  # see _has_request_contracts
        self._closed = False
        self._replay_journal()
        self._miner = threading.Thread(target=self._mine_loop, name="databright-miner",
                                       daemon=True)
        self._miner.start()

    # -- opening -----------------------------------------------------------------
    def _create_chain(self, path: Path) -> None:
        """Build the genesis block under a temporary name, then link it into place:
        a crash leaves no half-made chain, and an existing file is never replaced."""
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise damaged(path, f"the file is missing but its write-ahead log {wal.name} is not")
        built = path.with_name(f".{path.name}.new")
        self.kv = SQLiteKV(built, new=True)
        try:
            with self.kv.write():
                head = _build_genesis(AtomicDB(self.kv), self.genesis).get_canonical_head()
                self.kv[_GENESIS_KEY] = self.genesis.model_dump_json().encode()
                self._index_block(head, [], [], [], [])
            self.kv.mark(head.hash)
        finally:
            self.kv.close()
        publish(built, path)

    def _genesis_params(self) -> dict[str, Any]:
        return _genesis_header(self.genesis)

    def _open_chain(self) -> None:
        """Open the chain only if it is the one ``genesis`` made and its head is whole."""
        kv, path = self.kv, self.kv.path
        if not kv.exists(_GENESIS_KEY):
            raise damaged(path, "no genesis")
        chain = self._chain_class(AtomicDB(kv))
        stored = json.loads(kv[_GENESIS_KEY])
        given = json.loads(self.genesis.model_dump_json())
        expected = genesis_block_hash(self.genesis)
        marked = kv.genesis_hash()
        if (stored != given or chain.get_canonical_block_hash(BlockNumber(0)) != expected
                or marked not in (None, expected)):
            raise ChainError(
                f"{path} holds a chain with another genesis "
                f"(chain id {stored.get('chain_id')}); refusing to open it with "
                f"chain id {self.genesis.chain_id}")
        try:
            head = chain.get_canonical_head()
            if head.state_root != BLANK_ROOT_HASH and not kv.exists(head.state_root):
                raise damaged(path, f"the state of head block {head.block_number} is missing")
        except (KeyError, ValueError, rlp.DecodingError, PyEVMError) as exc:
            raise damaged(path, f"the head block cannot be read: {exc!r}") from None
        indexed = kv.query_one("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1")
        if indexed is None or (indexed[0], bytes(indexed[1])) != (head.block_number, head.hash):
            raise damaged(path, f"the block index does not end at head block {head.block_number}")
        if marked is None:  # written before files were marked: ours, as just verified
            kv.mark(expected)
        self.chain: Chain = chain

    def close(self) -> None:
        lock = self.close_keeping_lock()
        if lock is not None:
            lock.release()

    def close_keeping_lock(self) -> ChainLock | None:
        """Stop the miner and close the database, but keep holding the chain lock
        (to hand it to a writer process); ``None`` if already closed."""
        with self._cond:
            if self._closed:
                return None
            self._closed = True
            self._cond.notify_all()
        self._miner.join(timeout=30)
        with self._lock:
            self._journal.close()
            self.kv.close()
        return self._lock_file

    def next_base_fee(self) -> int:
        return calculate_expected_base_fee_per_gas(self._head)

    def pending_nonce(self, address: bytes) -> int:
        nonce, _ = self._account(address)
        with self._pool_lock:
            queued = self._pool.get(address, {})
            while nonce in queued:
                nonce += 1
        return nonce

    def _account(self, address: bytes) -> tuple[int, int]:
        """(nonce, balance) at the head; cached so submissions skip state reads."""
        cached = self._accounts.get(address)
        if cached is not None:
            return cached
        head = self._head
        state = self._reader().get_vm(head).state
        account = (state.get_nonce(Address(address)), state.get_balance(Address(address)))
        with self._pool_lock:
            if self._head is head:  # a block may have landed meanwhile
                if len(self._accounts) > 10_000:
                    self._accounts.clear()
                self._accounts[address] = account
        return account

    def is_pending(self, tx_hash: bytes) -> bool:
        with self._pool_lock:
            return tx_hash in self._by_hash

    def is_executable(self, tx_hash: bytes) -> bool:
        with self._pool_lock:
            item = self._by_hash.get(tx_hash)
            if item is None:
                return False
            queued = self._pool.get(item.sender, {})
            cached = self._accounts.get(item.sender)
        nonce = (cached or self._account(item.sender))[0]
        return all(n in queued for n in range(nonce, item.tx.nonce + 1))

    def pending_tx_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        with self._pool_lock:
            item = self._by_hash.get(tx_hash)
        return None if item is None else tx_json(item.tx, item.sender, None, None)

    def wait_mined(self, tx_hash: bytes, timeout: float) -> None:
        """Block until ``tx_hash`` has left the pool (mined or dropped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while tx_hash in self._by_hash and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    # -- writes ----------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Validate a signed transaction and add it to the pool; returns its hash."""
        if self._closed:
            raise RpcError(-32000, "node is shutting down")
        tx, sender = self.check_raw(raw)
        return self.add(tx, sender)

    def add(self, tx: SignedTransactionAPI, sender: bytes,
            pooled: Callable[[bool], None] | None = None) -> bytes:
        """Add a transaction that passed ``check_raw`` to the pool (state checks here).

        It is journaled (``pool`` table) before it enters the pool, so once this
        returns the transaction survives ``kill -9``: a restart pools it again
        or records why it cannot be (``dropped`` table, see ``dropped``).
        ``pooled`` is called under the pool lock once it is in, before the miner
        can take it (the writer acknowledges it there, ahead of its removal),
        with whether it can go into the next block (no nonce gap before it).
        """
        if self._closed:
            raise RpcError(-32000, "node is shutting down")
        self._admit(tx, sender, self._account(sender), None, pooled)
        return bytes(tx.hash)

    def _admit(self, tx: SignedTransactionAPI, sender: bytes, account: tuple[int, int],
               seq: int | None, pooled_hook: Callable[[bool], None] | None = None) -> None:
        """Check ``tx`` against the head and the sender's pooled transactions, then
        pool it; journal it first unless it comes from the journal (``seq``)."""
        tx_hash = bytes(tx.hash)
        with self._cond:
            if tx_hash in self._by_hash:
                raise RpcError(-32000, "already known")
            queued = self._pool.get(sender, {})
            pooled = queued_cost({n: q.tx for n, q in queued.items()}, account[0], tx.nonce)
            check_state(tx, self._head.gas_limit, self.next_base_fee(), account, pooled)
            old = queued.get(tx.nonce)
            if old is not None:
                check_replacement(tx, old.tx)
            if seq is None:
                seq = next(self._seq)
                self._journal_add(seq, tx, sender, old)
            if old is not None:
                del self._by_hash[old.tx.hash]
                self._removed.append(old.tx.hash)
            item = _Pooled(seq, tx, sender)
            self._pool.setdefault(sender, {})[tx.nonce] = item
            self._by_hash[tx_hash] = item
            self.note_arrival(tx_hash)
            if pooled_hook is not None:
                pooled_hook(all(n in queued for n in range(account[0], tx.nonce)))
            self._flush_removed()
            self._cond.notify_all()

    def _journal_write(self, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """One SQLite transaction on the journal's connection, queued behind block
        commits on the database's commit lock (WAL: it survives ``kill -9``)."""
        conn = self._journal
        with self.kv.commit_lock:
            if len(batches) == 1 and len(batches[0][1]) == 1:
                # One statement commits by itself: every call into SQLite hands
                # the GIL to the miner and back, so spare BEGIN and COMMIT.
                conn.execute(batches[0][0], batches[0][1][0])
                return
            with immediate(conn):
                for sql, rows in batches:
                    conn.executemany(sql, rows)

    def _journal_add(self, seq: int, tx: SignedTransactionAPI, sender: bytes,
                     replaced: _Pooled | None) -> None:
        """Make a pooled transaction durable; a replaced one leaves the journal
        with its reason. (A hash sent again may keep an old ``dropped`` row: it
        is read only for hashes neither pooled nor mined.)"""
        tx_hash = bytes(tx.hash)
        batches: list[tuple[str, list[tuple[Any, ...]]]] = [
            ("INSERT INTO pool (hash, seq, sender, raw) VALUES (?, ?, ?, ?)",
             [(tx_hash, seq, sender, tx.encode())])]
        if replaced is not None:
            old_hash = bytes(replaced.tx.hash)
            batches += [("DELETE FROM pool WHERE hash = ?", [(old_hash,)]),
                        ("INSERT OR REPLACE INTO dropped VALUES (?, ?)",
                         [(old_hash, f"replaced by {hb(tx_hash)}")])]
        try:
            self._journal_write(batches)
        except sqlite3.Error as exc:
            raise RpcError(-32000, f"transaction not accepted: the pool journal "
                                   f"could not be written ({exc})") from exc

    def _replay_journal(self) -> None:
        """Pool again what a previous run journaled but did not mine; a transaction
        that no longer fits the chain is recorded as dropped, with the reason."""
        conn = self._journal
        rows = conn.execute("SELECT seq, hash, sender, raw FROM pool ORDER BY seq").fetchall()
        gone: list[tuple[Any, ...]] = []
        reasons: list[tuple[Any, ...]] = []
        for seq, tx_hash, sender, raw in rows:
            if conn.execute("SELECT 1 FROM txs WHERE hash = ?", (tx_hash,)).fetchone():
                gone.append((tx_hash,))  # mined; its journal row is stale
                continue
            try:
                tx = _BUILDER.decode(raw)
                tx.__dict__["sender"] = sender  # recovered when it was first accepted
                self._admit(tx, sender, self._account(sender), seq)
            except RpcError as exc:
                gone.append((tx_hash,))
                reasons.append((tx_hash, exc.message))
        self._removed.clear()
        if rows:
            self._seq = itertools.count(rows[-1][0] + 1)
        if gone:
            self._journal_write([("DELETE FROM pool WHERE hash = ?", gone),
                                 ("INSERT OR REPLACE INTO dropped VALUES (?, ?)", reasons)])

    def increase_time(self, seconds: int) -> int:
        """Move the clock forward: the next block is at least ``seconds`` after the latest.

        Blocks mined faster than one per second run ahead of the wall clock (each
        is at least its parent + 1), so the offset is measured from whichever is
        later, as anvil does.
        """
        with self._lock:
            ahead = self._head.timestamp - (int(time.time()) + self._time_offset)
            self._time_offset += seconds + max(ahead, 0)
            self.kv[_TIME_OFFSET_KEY] = str(self._time_offset).encode()
            return self._time_offset

    def set_next_timestamp(self, timestamp: int) -> None:
        with self._lock:
            if timestamp <= self._head.timestamp:
                raise RpcError(-32000, f"timestamp {timestamp} is not after the latest "
                                       f"block's {self._head.timestamp}")
            self._next_timestamp = timestamp

    def mine(self, timestamp: int | None = None) -> BlockHeaderAPI:
        """Mine one block now with every executable pooled transaction (maybe none)."""
        with self._lock:
            if timestamp is not None:
                self.set_next_timestamp(timestamp)
            return self._mine_block()

    def _mine_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._has_executable():
                    self._cond.wait()
                if self._closed:
                    return
            with self._lock:
                try:
                    self._mine_block()
                except _Unsealable as failed:
                    self._drop(failed.items, f"could not be mined: {failed.__cause__!r}")
                except Exception:  # noqa: BLE001 - e.g. the disk is full: retry, never stop
                    time.sleep(_RETRY_S)

    def _drop(self, items: list[_Pooled], reason: str) -> None:
        """Take ``items`` out of the pool and its journal, recording ``reason``."""
        with self.kv.write():
            self.kv.add_rows("DELETE FROM pool WHERE hash = ?", [(bytes(i.tx.hash),) for i in items])
            self.kv.add_rows("INSERT OR REPLACE INTO dropped VALUES (?, ?)",
                             [(bytes(i.tx.hash), reason) for i in items])
        with self._cond:
            for item in items:
                self._forget(item)
            self._flush_removed()
            self._cond.notify_all()

    def _has_executable(self) -> bool:
        """Whether some sender's next nonce is pooled (call with ``_pool_lock``)."""
        accounts = self._accounts
        for sender, queued in self._pool.items():
            account = accounts.get(sender)
            if account is None or account[0] in queued:
                return True
        return False

    def _executable(self, state: Any) -> list[_Pooled]:
        """Pooled transactions in arrival order, each sender's in nonce order."""
        with self._pool_lock:
            pool = {sender: dict(queued) for sender, queued in self._pool.items()}
        heads: list[tuple[int, bytes, int]] = []
        for sender, queued in pool.items():
            nonce = state.get_nonce(sender)
            if nonce in queued:
                heads.append((queued[nonce].seq, sender, nonce))
        heapq.heapify(heads)
        out = []
        while heads:
            _, sender, nonce = heapq.heappop(heads)
            queued = pool[sender]
            out.append(queued[nonce])
            if nonce + 1 in queued:
                heapq.heappush(heads, (queued[nonce + 1].seq, sender, nonce + 1))
        return out

    def _mine_block(self) -> BlockHeaderAPI:
        """Build, execute and commit one block (call with ``_lock``).

        No transaction can stop the miner: each is checked against the state just
        before it runs and dropped (with its reason) if it no longer fits; one that
        fails inside py-evm anyway leaves the state half-applied, so the block is
        built again without it.
        """
        excluded: dict[bytes, str] = {}
        while True:
            try:
                vm, current, included, receipts, dropped = self._build(excluded)
                break
            except _Poisoned as poisoned:
                excluded[bytes(poisoned.item.tx.hash)] = poisoned.reason
        chain = self.chain
        txs = [item.tx for item in included]
        state = vm.state
        with self._pool_lock:
            pooled = set(self._pool)
        done = included + [item for item, _ in dropped]
        fresh = self._refreshed_accounts(state, pooled | {item.sender for item in done})
        with self._pool_lock:
            # Anything now below its sender's nonce can never be mined.
            # (A sender pooled while this block was sealed is checked next block.)
            taken = {id(item) for item in done}
            stale = [q for sender, queued in self._pool.items() if sender in fresh
                     for n, q in queued.items() if n < fresh[sender][0] and id(q) not in taken]
        reasons = [(bytes(item.tx.hash), reason) for item, reason in dropped]
        reasons += [(bytes(item.tx.hash), f"nonce too low: next nonce {fresh[item.sender][0]}, "
                                          f"tx nonce {item.tx.nonce}") for item in stale]
        try:
            with self.kv.write():
                mined = self._seal(vm, current, txs, receipts)
                chain.chaindb.persist_block(mined)
                self._index_block(mined.header, txs, [i.sender for i in included], receipts,
                                  [len(rlp.encode(mined))])
                self.kv.add_rows("DELETE FROM pool WHERE hash = ?",
                                 [(bytes(item.tx.hash),) for item in done + stale])
                if reasons:
                    self.kv.add_rows("INSERT OR REPLACE INTO dropped VALUES (?, ?)", reasons)
        except BaseException as exc:
            self._reopen()
            if isinstance(exc, Exception) and not isinstance(exc, sqlite3.Error) and included:
                raise _Unsealable(included) from exc  # these transactions cannot be sealed
            raise
        self._next_timestamp = None
        with self._cond:
            self._head = mined.header
            self._accounts = fresh
            for item in done + stale:
                self._forget(item)
            self._flush_removed()
            self._cond.notify_all()
        return mined.header

    def _build(self, excluded: dict[bytes, str]) -> tuple[
            PragueVM, BlockHeaderAPI, list[_Pooled], list[ReceiptAPI], list[tuple[_Pooled, str]]]:
        """Execute the next block's transactions (not yet sealed): the VM, the
        header so far, what was included and what was dropped (with why)."""
        chain = self.chain
        parent = self._head
        header = chain.create_header_from_parent(parent, **self._header_params(parent))
        vm = cast(PragueVM, chain.get_vm(header))  # the only VM of this chain
        vm.block_preprocessing(vm.get_block())
        state = vm.state
        fee = base_fee(header)
        included: list[_Pooled] = []
        receipts: list[ReceiptAPI] = []
        dropped: list[tuple[_Pooled, str]] = []
        current = header
        held: set[bytes] = set()  # senders whose next nonce did not make it into this block
        for item in self._executable(state):
            tx = item.tx
            if item.sender in held:
                continue
            if current.gas_used + tx.gas > current.gas_limit:
                held.add(item.sender)  # waits for the next block
                continue
            reason = excluded.get(bytes(tx.hash)) or _invalid_in_block(
                state, tx, item.sender, current.gas_limit, fee)
            if reason is not None:
                # e.g. an earlier transaction in this block spent the funds
                dropped.append((item, reason))
                held.add(item.sender)
                continue
            try:
                receipt, _ = vm.apply_transaction(current, tx)
            except Exception as exc:  # noqa: BLE001 - see _mine_block
                raise _Poisoned(item, f"invalid transaction: {exc}") from exc
            current = vm.add_receipt_to_header(current, receipt)
            included.append(item)
            receipts.append(receipt)
        return vm, current, included, receipts, dropped

    def _refreshed_accounts(self, state: Any, wanted: set[bytes]) -> dict[bytes, tuple[int, int]]:
        """The (nonce, balance) cache as of the block ``state`` is building.

        Accounts the block did not touch keep their cached values; touched ones
        (senders, coinbase, anything a contract paid) are re-read from the live
        state, where py-evm already holds them decoded. Call before sealing.
        """
        try:
            diff = state._account_db._journaltrie.diff()
            touched = set(diff.pending_keys()) | set(diff.deleted_keys())
        except AttributeError:  # another py-evm layout: forget everything
            touched = None
        with self._pool_lock:
            cached = dict(self._accounts)
        self._touched = touched
        if touched is None:
            keep: dict[bytes, tuple[int, int]] = {}
        else:
            keep = {a: v for a, v in cached.items() if a not in touched}
            wanted = wanted | (touched & cached.keys())
        if len(keep) > 10_000:
            keep = {}
        for address in wanted:
            if address not in keep:
                keep[address] = (state.get_nonce(address), state.get_balance(address))
        return keep

    def _has_request_contracts(self, state: Any) -> bool:
        """Whether an EIP-7685 request contract has code; asked once per block.

        Only a block that touches one of those accounts can change the answer.
        """
        touched = self._touched
        if self._request_code is None or touched is None or touched & _REQUEST_CONTRACT_SET:
            self._request_code = any(state.get_code(a) for a in _REQUEST_CONTRACTS)
        return self._request_code

    def _seal(self, vm: PragueVM, header: BlockHeaderAPI, txs: list[SignedTransactionAPI],
              receipts: list[ReceiptAPI]) -> BlockAPI:
        """Fill in roots and requests, then the state root (what ``mine_all`` does,
        minus re-validating a block we just built ourselves)."""
        tx_root, tx_nodes = trie_root_and_nodes([tx.encode() for tx in txs])
        receipt_root, receipt_nodes = trie_root_and_nodes([r.encode() for r in receipts])
        vm.chaindb.persist_trie_data_dict(tx_nodes)
        vm.chaindb.persist_trie_data_dict(receipt_nodes)
        roots = {"transaction_root": tx_root, "receipt_root": receipt_root}
        if self._has_request_contracts(vm.state):
            block = vm.get_block().copy(transactions=txs, header=header.copy(**roots))
            block = vm.block_postprocessing(block)  # EIP-7685 requests, rarely present
        else:  # one header copy: each re-validates every field
            block = vm.get_block().copy(transactions=txs, header=header.copy(
                requests_hash=_EMPTY_REQUESTS_HASH, **roots))
        return vm.finalize_block(block).block

    def _flush_removed(self) -> None:
        """Tell ``on_removed`` which transactions left the pool (call with ``_pool_lock``)."""
        removed, self._removed = self._removed, []
        if removed and self.on_removed is not None:
            self.on_removed(removed)

    def _forget(self, item: _Pooled) -> None:
        if self._by_hash.pop(item.tx.hash, None) is not None:
            self._removed.append(item.tx.hash)
        queued = self._pool.get(item.sender)
        if queued is not None and queued.get(item.tx.nonce) is item:
            del queued[item.tx.nonce]
            if not queued:
                del self._pool[item.sender]

    def _reopen(self) -> None:
        self.chain = self._chain_class(AtomicDB(self.kv))
        self._request_code = None

    def _index_block(self, header: BlockHeaderAPI, txs: list[SignedTransactionAPI],
                     senders: list[bytes], receipts: list[ReceiptAPI],
                     size: list[int]) -> None:
        number, block_hash = header.block_number, header.hash
        tx_rows, log_rows = [], []
        log_index = 0
        previous_gas = 0
        for index, (tx, sender, receipt) in enumerate(zip(txs, senders, receipts, strict=True)):
            tx_view = tx_json(tx, sender, header, index)
            logs = []
            for log in receipt.logs:
                topics = [t.to_bytes(32, "big") for t in log.topics]
                entry = {
                    "address": checksum(log.address),
                    "topics": [hb(t) for t in topics],
                    "data": hb(log.data),
                    "blockNumber": hx(number), "blockHash": hb(block_hash),
                    "transactionHash": hb(tx.hash), "transactionIndex": hx(index),
                    "logIndex": hx(log_index), "removed": False,
                    "blockTimestamp": hx(header.timestamp),  # geth >= 1.16 and anvil
                }
                logs.append(entry)
                padded = topics + [None] * (4 - len(topics))
                log_rows.append((number, log_index, bytes(log.address), *padded[:4],
                                 json.dumps(entry)))
                log_index += 1
            contract = None
            if not tx.to:
                contract = checksum(generate_contract_address(Address(sender), tx.nonce))
            receipt_json = {
                "transactionHash": hb(tx.hash), "transactionIndex": hx(index),
                "blockHash": hb(block_hash), "blockNumber": hx(number),
                "from": checksum(sender),
                "to": checksum(tx.to) if tx.to else None,
                "cumulativeGasUsed": hx(receipt.gas_used),
                "gasUsed": hx(receipt.gas_used - previous_gas),
                "effectiveGasPrice": hx(effective_price(tx, base_fee(header))),
                "contractAddress": contract,
                "logs": logs,
                "logsBloom": hb(receipt.bloom.to_bytes(256, "big")),
                "status": hx(1 if receipt.state_root == b"\x01" else 0),
                "type": hx(tx.type_id or 0),
            }
            previous_gas = receipt.gas_used
            tx_rows.append((bytes(tx.hash), number, index, json.dumps(tx_view),
                            json.dumps(receipt_json)))
        block_size = size[0] if size else len(rlp.encode(header)) + 3
        self.kv.add_rows("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)",
                         [(number, bytes(block_hash),
                           json.dumps(header_json(header, block_size)))])
        if tx_rows:
            self.kv.add_rows("INSERT OR REPLACE INTO txs VALUES (?, ?, ?, ?, ?)", tx_rows)
        if log_rows:
            self.kv.add_rows("INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             log_rows)
