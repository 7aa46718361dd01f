"""Ethereum JSON-RPC 2.0 for the embedded ledger: method dispatch.

The dispatcher works on already-decoded JSON (``dict``/``list``) so the in-process
web3 provider and the HTTP front end (``_http``) answer with exactly the same bytes.
"""
from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

from eth.exceptions import OutOfGas, Revert
from eth_hash.auto import keccak
from eth_utils.exceptions import ValidationError
from eth_abi.abi import decode as abi_decode

from ._call import access_list_of, run_call
from ._codec import base_fee, checksum, hb, hx
from ._evm import DEFAULT_PRIORITY_FEE, ZERO_ADDRESS, ChainReader, RpcError
from ._fill import fill_transaction
from ._params import address as _address
from ._params import call_args
from ._params import data as _data
from ._params import hash32 as _hash
from ._params import quantity as _quantity
from ._proof import account_proof

__all__ = ["DEV_PREFIXES", "Dispatcher"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_RECEIPT_WAIT_S = 2.0
# Methods that move the clock or mine on demand: only for a node started with --dev.
DEV_PREFIXES = ("evm_", "anvil_", "hardhat_")


def _storage_key(value: Any) -> int:
    """A slot as geth reads ``eth_getProof`` keys: hex of at most 32 bytes, odd
    lengths allowed ("0x0")."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"not a storage key: {value!r}")
    digits = value[2:]
    raw = bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    if len(raw) > 32:
        raise ValueError("hex string too long, want at most 32 bytes")
    return int.from_bytes(raw, "big")


def _gas_used(computation: Any, gas: int) -> int:
    """A transaction's gas used, as its receipt would say: before the refund, less
    the refund (capped at a fifth, EIP-3529)."""
    before = gas - computation.get_gas_remaining()
    return int(before - min(computation.get_gas_refund(), before // 5))


def _failure(error: Exception) -> str:
    """geth's words for an execution failure other than a revert."""
    return "out of gas" if isinstance(error, OutOfGas) else (str(error) or type(error).__name__)


def data_floor_gas(data: bytes) -> int:
    """EIP-7623 (Prague): a transaction pays at least 21000 + 10 gas per calldata
    token (a zero byte is one token, any other byte four)."""
    zeros = data.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(data) - zeros))


def revert_error(output: bytes) -> RpcError:
    """The geth/anvil shape for a revert: code 3, reason in the message, bytes in data."""
    message = "execution reverted"
    if output[:4] == _ERROR_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], output[4:])
            message = f"execution reverted: {reason}"
        except Exception:  # noqa: BLE001 - a malformed reason is still a revert
            pass
    return RpcError(3, message, hb(output))


class Dispatcher:
    """Maps JSON-RPC method names onto the ledger."""

    def __init__(self, ledger: ChainReader, client_version: str, *, dev: bool = True) -> None:
        self.ledger = ledger
        self.client_version = client_version
        self.dev = dev  # whether the development methods (DEV_PREFIXES) are answered
        self._filters: dict[str, tuple[str, Any, int]] = {}
        self._filter_ids = itertools.count(1)
        self._filters_lock = threading.Lock()
        self.methods: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name)
            for name in dir(self) if name.startswith("rpc_")
        }

    # -- protocol ----------------------------------------------------------------
    def call(self, method: str, params: list[Any]) -> Any:
        """Run one method; raises ``RpcError`` with a JSON-RPC code on failure."""
        handler = self.methods.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
        if not self.dev and method.startswith(DEV_PREFIXES):
            raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available "
                           "(development methods need 'databright node --dev')")
        if not isinstance(params, list):
            raise RpcError(INVALID_PARAMS, "params must be an array")
        try:
            return handler(*params)
        except RpcError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, OverflowError,
                ValidationError) as exc:  # all from what the client sent
            raise RpcError(INVALID_PARAMS, f"invalid params: {exc}") from exc

    def handle_request(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, RpcError(INVALID_REQUEST, "invalid request"))
        req_id = request.get("id")
        try:
            result = self.call(request["method"], request.get("params", []))
        except RpcError as exc:
            response = _error(req_id, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the server
            response = _error(req_id, RpcError(INTERNAL_ERROR, f"internal error: {exc!r}"))
        else:
            response = {"jsonrpc": "2.0", "id": req_id, "result": result}
        return response if "id" in request else None

    def handle_payload(self, payload: Any) -> Any:
        """A decoded request or batch in, a response (or ``None``) out."""
        if isinstance(payload, list):
            if not payload:
                return _error(None, RpcError(INVALID_REQUEST, "empty batch"))
            responses = [self.handle_request(item) for item in payload]
            return [r for r in responses if r is not None] or None
        return self.handle_request(payload)

    def handle_bytes(self, body: bytes) -> bytes | None:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            response: Any = _error(None, RpcError(PARSE_ERROR, f"parse error: {exc}"))
        else:
            response = self.handle_payload(payload)
        return None if response is None else json.dumps(response).encode()

    # -- block resolution --------------------------------------------------------
    def _number(self, tag: Any, *, must_exist: bool = True) -> int | None:
        if isinstance(tag, dict):
            if "blockHash" in tag:
                rows = self.ledger.query("SELECT number FROM blocks WHERE hash = ?",
                                         (_hash(tag["blockHash"]),))
                if not rows:
                    raise RpcError(-32000, f"block {tag['blockHash']} not found")
                return int(rows[0][0])
            tag = tag.get("blockNumber", "latest")
        head = self.ledger.head().block_number
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return head
        if tag == "earliest":
            return 0
        number = _quantity(tag)
        if number > head:
            if must_exist:
                raise RpcError(-32000, f"header not found: block {number} is after {head}")
            return None
        return number

    def _header(self, tag: Any) -> Any:
        number = self._number(tag)
        assert number is not None
        return self.ledger.header_at(number)

    def _block(self, number: int | None, full: bool) -> dict[str, Any] | None:
        if number is None:
            return None
        rows = self.ledger.query("SELECT header FROM blocks WHERE number = ?", (number,))
        if not rows:
            return None
        block: dict[str, Any] = json.loads(rows[0][0])
        if full:
            txs = self.ledger.query("SELECT tx FROM txs WHERE block = ? ORDER BY idx", (number,))
            block["transactions"] = [json.loads(t) for (t,) in txs]
        else:
            txs = self.ledger.query("SELECT hash FROM txs WHERE block = ? ORDER BY idx",
                                    (number,))
            block["transactions"] = [hb(h) for (h,) in txs]
        return block

    # -- chain facts -------------------------------------------------------------
    def rpc_web3_clientVersion(self) -> str:
        return self.client_version

    def rpc_net_version(self) -> str:
        return str(self.ledger.chain_id)

    def rpc_net_listening(self) -> bool:
        return True

    def rpc_eth_chainId(self) -> str:
        return hx(self.ledger.chain_id)

    def rpc_eth_syncing(self) -> bool:
        return False

    def rpc_eth_accounts(self) -> list[str]:
        return []

    def rpc_eth_coinbase(self) -> str:
        """Where block rewards go: the zero address on this chain (no fee recipient)."""
        return checksum(ZERO_ADDRESS)

    def rpc_web3_sha3(self, value: Any) -> str:
        return hb(keccak(_data(value)))

    def rpc_eth_blockNumber(self) -> str:
        return hx(self.ledger.head().block_number)

    def rpc_eth_gasPrice(self) -> str:
        return hx(self.ledger.next_base_fee() + self._suggested_tip())

    def rpc_eth_maxPriorityFeePerGas(self) -> str:
        return hx(self._suggested_tip())

    def _suggested_tip(self) -> int:
        """The lowest tip paid in the latest block, and at least 1 gwei (anvil's
        oracle; geth's also follows recent tips): a client pricing from it keeps
        up with what is being paid instead of staying at the minimum."""
        head = self.ledger.head()
        rows = self.ledger.query("SELECT receipt FROM txs WHERE block = ?", (head.block_number,))
        fee = base_fee(head)
        tips = [int(json.loads(r)["effectiveGasPrice"], 16) - fee for (r,) in rows]
        return max(min(tips, default=0), DEFAULT_PRIORITY_FEE)

    def rpc_eth_blobBaseFee(self) -> str:
        return hx(1)

    def rpc_eth_feeHistory(self, count: Any, newest: Any,
                           percentiles: list[float] | None = None) -> dict[str, Any]:
        count = min(_quantity(count), 1024)
        last = self._number(newest)
        assert last is not None
        first = max(0, last - count + 1)
        base_fees, ratios, rewards = [], [], []
        for number in range(first, last + 1):
            header = self.ledger.header_at(number)
            base_fees.append(hx(base_fee(header)))
            ratios.append(header.gas_used / header.gas_limit)
            if percentiles:
                rewards.append(self._rewards(number, base_fee(header), percentiles))
        base_fees.append(hx(self._next_base_fee_after(last)))
        result: dict[str, Any] = {
            "oldestBlock": hx(first), "baseFeePerGas": base_fees, "gasUsedRatio": ratios,
            "baseFeePerBlobGas": [hx(1)] * len(base_fees),
            "blobGasUsedRatio": [0.0] * len(ratios),
        }
        if percentiles:
            result["reward"] = rewards
        return result

    def _next_base_fee_after(self, number: int) -> int:
        if number >= self.ledger.head().block_number:
            return self.ledger.next_base_fee()
        return base_fee(self.ledger.header_at(number + 1))

    def _rewards(self, number: int, base_fee: int, percentiles: list[float]) -> list[str]:
        rows = self.ledger.query("SELECT tx, receipt FROM txs WHERE block = ? ORDER BY idx",
                                 (number,))
        tips = []
        for tx_text, receipt_text in rows:
            receipt = json.loads(receipt_text)
            tips.append((int(receipt["effectiveGasPrice"], 16) - base_fee,
                         int(receipt["gasUsed"], 16)))
        if not tips:
            return [hx(0)] * len(percentiles)
        tips.sort()
        total = sum(g for _, g in tips)
        out = []
        for p in percentiles:
            threshold, acc, chosen = total * p / 100, 0, tips[-1][0]
            for tip, gas in tips:
                acc += gas
                if acc >= threshold:
                    chosen = tip
                    break
            out.append(hx(max(chosen, 0)))
        return out

    # -- state -------------------------------------------------------------------
    def rpc_eth_getBalance(self, address: Any, tag: Any = "latest") -> str:
        with self.ledger.state_at(self._header(tag)) as state:
            return hx(state.get_balance(_address(address)))

    def rpc_eth_getCode(self, address: Any, tag: Any = "latest") -> str:
        with self.ledger.state_at(self._header(tag)) as state:
            return hb(state.get_code(_address(address)))

    def rpc_eth_getStorageAt(self, address: Any, slot: Any, tag: Any = "latest") -> str:
        with self.ledger.state_at(self._header(tag)) as state:
            value = state.get_storage(_address(address), _quantity(slot))
        return hb(value.to_bytes(32, "big"))

    def rpc_eth_getProof(self, address: Any, slots: Any, tag: Any = "latest") -> dict[str, Any]:
        """EIP-1186: the account and storage proofs against the block's state root."""
        if not isinstance(slots, list):
            raise ValueError("storage keys must be an array")
        keys = [(k, _storage_key(k)) for k in slots]
        header = self._header(tag)
        return account_proof(self.ledger.view().chaindb.db, header.state_root,
                             _address(address), keys)

    def rpc_eth_getTransactionCount(self, address: Any, tag: Any = "latest") -> str:
        if tag == "pending":
            return hx(self.ledger.pending_nonce(_address(address)))
        with self.ledger.state_at(self._header(tag)) as state:
            return hx(state.get_nonce(_address(address)))

    # -- execution (see _call) ------------------------------------------------------
    def _call_context(self, tag: Any) -> Any:
        """The header a call runs in: the named block's own, or the next block's
        for ``pending`` (on the head's state)."""
        pending = tag == "pending" or (isinstance(tag, dict) and tag.get("blockNumber") == "pending")
        return self.ledger.pending_header() if pending else self._header(tag)

    def _run(self, call: Any, tag: Any, gas: int | None = None) -> Any:
        args = call_args(call)
        if gas is not None:
            args = args.with_gas(gas)
        return run_call(self.ledger.view(), self._call_context(tag), self.ledger.chain_id, args)

    @staticmethod
    def _raise_if_error(computation: Any) -> None:
        if computation.is_error:
            if isinstance(computation.error, Revert):
                raise revert_error(bytes(computation.output))
            raise RpcError(-32000, _failure(computation.error))

    def rpc_eth_call(self, call: Any, tag: Any = "latest", *_overrides: Any) -> str:
        computation = self._run(call, tag)
        self._raise_if_error(computation)
        return hb(computation.output)

    def rpc_eth_estimateGas(self, call: Any, tag: Any = "pending", *_overrides: Any) -> str:
        """geth's search: the cap is the call's gas (or the block's), lowered to what
        the sender can pay at its fee cap; then the least gas that succeeds.

        Without a tag, in the block the transaction would be mined in: blocks here
        are mined on demand, so the latest may be hours old (a deadline passed
        since would make the estimate revert)."""
        args = call_args(call)
        context = self._call_context(tag)
        cap = min(args.gas or context.gas_limit, context.gas_limit)
        fee_cap = args.max_fee if args.dynamic else args.gas_price
        if fee_cap:
            with self.ledger.state_at(self._header(tag)) as state:
                balance = state.get_balance(args.sender)
            if args.value > balance:
                raise RpcError(-32000, "insufficient funds for transfer")
            cap = min(cap, (balance - args.value) // fee_cap)
        chain, chain_id = self.ledger.view(), self.ledger.chain_id
        first = run_call(chain, context, chain_id, args.with_gas(cap))
        if first.is_error and not isinstance(first.error, Revert):
            raise RpcError(-32000, f"gas required exceeds allowance ({cap})")
        self._raise_if_error(first)

        def succeeds(gas: int) -> bool:
            try:
                return not run_call(chain, context, chain_id, args.with_gas(gas)).is_error
            except RpcError:  # e.g. below the intrinsic gas
                return False

        # Gas before refunds is what the transaction needs to hold; the 63/64 rule
        # can demand more, so confirm and search upwards only when that fails.
        guess = max(cap - first.get_gas_remaining(), data_floor_gas(args.data))
        if succeeds(guess):
            return hx(guess)
        low, high = guess, cap
        while high - low > max(1, high // 200):
            mid = (low + high) // 2
            if succeeds(mid):
                high = mid
            else:
                low = mid
        return hx(high)

    def rpc_eth_createAccessList(self, call: Any, tag: Any = "pending") -> dict[str, Any]:
        """geth's: what the call touches, with the gas it uses given that list
        (without a tag, in the next block, as ``eth_estimateGas``)."""
        args = call_args(call)
        context = self._call_context(tag)
        gas = min(args.gas or context.gas_limit, context.gas_limit)
        found, computation = access_list_of(self.ledger.view(), context, self.ledger.chain_id,
                                            args.with_gas(gas))
        result: dict[str, Any] = {
            "accessList": [{"address": hb(a),  # lower case, as geth writes it
                            "storageKeys": [hb(k.to_bytes(32, "big")) for k in keys]}
                           for a, keys in found],
            "gasUsed": hx(_gas_used(computation, gas)),
        }
        if computation.is_error:
            error = computation.error
            result["error"] = (revert_error(bytes(computation.output)).message
                               if isinstance(error, Revert) else _failure(error))
        return result

    def rpc_eth_fillTransaction(self, call: Any) -> dict[str, Any]:
        return fill_transaction(
            call, chain_id=self.ledger.chain_id, pending_nonce=self.ledger.pending_nonce,
            estimate=lambda c: int(self.rpc_eth_estimateGas(c), 16), tip=self._suggested_tip,
            latest_base_fee=base_fee(self.ledger.head()))

    def rpc_eth_sendRawTransaction(self, raw: Any) -> str:
        return hb(self.ledger.submit(_data(raw)))

    # -- history -----------------------------------------------------------------
    def rpc_eth_getTransactionReceipt(self, tx_hash: Any) -> Any:
        digest = _hash(tx_hash)
        # Ask the pool first: a transaction leaves it only after its block committed.
        pending = self.ledger.is_pending(digest)
        rows = self.ledger.query("SELECT receipt FROM txs WHERE hash = ?", (digest,))
        if not rows and pending and self.ledger.is_executable(digest):
            # The miner takes the pool at once; waiting a moment here spares
            # polling clients (web3 sleeps 100 ms between polls) a round trip.
            # A queued transaction (waiting for an earlier nonce) is answered now.
            self.ledger.wait_mined(digest, _RECEIPT_WAIT_S)
            rows = self.ledger.query("SELECT receipt FROM txs WHERE hash = ?", (digest,))
        if not rows and not self.ledger.is_pending(digest):
            reason = self.ledger.dropped(digest)
            if reason is not None:
                raise RpcError(-32000, f"transaction {hb(digest)} was dropped: {reason}")
        return json.loads(rows[0][0]) if rows else None

    def rpc_eth_getTransactionByHash(self, tx_hash: Any) -> Any:
        digest = _hash(tx_hash)
        pending = self.ledger.pending_tx_json(digest)
        rows = self.ledger.query("SELECT tx FROM txs WHERE hash = ?", (digest,))
        return json.loads(rows[0][0]) if rows else pending

    def rpc_eth_getBlockByNumber(self, tag: Any, full: bool = False) -> Any:
        return self._block(self._number(tag, must_exist=False), bool(full))

    def rpc_eth_getBlockByHash(self, block_hash: Any, full: bool = False) -> Any:
        rows = self.ledger.query("SELECT number FROM blocks WHERE hash = ?",
                                 (_hash(block_hash),))
        return self._block(int(rows[0][0]), bool(full)) if rows else None

    def rpc_eth_getBlockReceipts(self, tag: Any) -> Any:
        number = self._number(tag, must_exist=False)
        if number is None:
            return None
        rows = self.ledger.query("SELECT receipt FROM txs WHERE block = ? ORDER BY idx",
                                 (number,))
        return [json.loads(r) for (r,) in rows]

    def rpc_eth_getBlockTransactionCountByNumber(self, tag: Any) -> Any:
        number = self._number(tag, must_exist=False)
        if number is None:
            return None
        rows = self.ledger.query("SELECT count(*) FROM txs WHERE block = ?", (number,))
        return hx(rows[0][0])

    def _number_by_hash(self, block_hash: Any) -> int | None:
        rows = self.ledger.query("SELECT number FROM blocks WHERE hash = ?", (_hash(block_hash),))
        return int(rows[0][0]) if rows else None

    def rpc_eth_getBlockTransactionCountByHash(self, block_hash: Any) -> Any:
        number = self._number_by_hash(block_hash)
        return None if number is None else self.rpc_eth_getBlockTransactionCountByNumber(
            hx(number))

    def _tx_at(self, number: int | None, index: Any) -> Any:
        position = _quantity(index)
        if number is None:
            return None
        rows = self.ledger.query("SELECT tx FROM txs WHERE block = ? AND idx = ?",
                                 (number, position))
        return json.loads(rows[0][0]) if rows else None

    def rpc_eth_getTransactionByBlockNumberAndIndex(self, tag: Any, index: Any) -> Any:
        return self._tx_at(self._number(tag, must_exist=False), index)

    def rpc_eth_getTransactionByBlockHashAndIndex(self, block_hash: Any, index: Any) -> Any:
        return self._tx_at(self._number_by_hash(block_hash), index)

    # This chain has no uncles (proof of stake rules): counts are 0, lookups null.
    def rpc_eth_getUncleCountByBlockNumber(self, tag: Any) -> Any:
        return None if self._number(tag, must_exist=False) is None else hx(0)

    def rpc_eth_getUncleCountByBlockHash(self, block_hash: Any) -> Any:
        return None if self._number_by_hash(block_hash) is None else hx(0)

    def rpc_eth_getUncleByBlockNumberAndIndex(self, tag: Any, index: Any) -> None:
        self._number(tag, must_exist=False)
        _quantity(index)

    def rpc_eth_getUncleByBlockHashAndIndex(self, block_hash: Any, index: Any) -> None:
        _hash(block_hash)
        _quantity(index)

    def rpc_eth_getLogs(self, criteria: Any) -> list[Any]:
        return self._logs(criteria, up_to_head=True)

    def _logs(self, criteria: Any, up_to_head: bool) -> list[Any]:
        """Logs matching ``criteria``; with ``up_to_head`` a range past the head is
        an error (geth's), otherwise it is cut at the head (filters)."""
        if not isinstance(criteria, dict):
            raise ValueError("filter must be an object")
        clauses: list[str] = []
        args: list[Any] = []
        if criteria.get("blockHash") and (criteria.get("fromBlock") is not None
                                          or criteria.get("toBlock") is not None):
            raise RpcError(INVALID_PARAMS, "invalid argument 0: cannot specify both BlockHash "
                                           "and FromBlock/ToBlock, choose one or the other")
        if criteria.get("blockHash"):
            rows = self.ledger.query("SELECT number FROM blocks WHERE hash = ?",
                                     (_hash(criteria["blockHash"]),))
            if not rows:
                raise RpcError(-32000, "unknown block")
            clauses.append("block = ?")
            args.append(rows[0][0])
        else:
            head = self.ledger.head().block_number
            first, last = (self._range_end(criteria.get(key), head)
                           for key in ("fromBlock", "toBlock"))
            if first > last:
                raise RpcError(INVALID_PARAMS, "invalid block range params")
            if last > head:
                if up_to_head:
                    raise RpcError(INVALID_PARAMS, "block range extends beyond current head block")
                last = head
            clauses.append("block BETWEEN ? AND ?")
            args += [first, last]
        address = criteria.get("address")
        if address:
            addresses = address if isinstance(address, list) else [address]
            clauses.append(f"address IN ({','.join('?' * len(addresses))})")
            args += [_address(a) for a in addresses]
        topics = criteria.get("topics") or []
        if len(topics) > 4:
            raise ValueError("at most 4 topic positions")
        for position, wanted in enumerate(topics):
            if wanted is None:
                continue
            options = wanted if isinstance(wanted, list) else [wanted]
            if not options or None in options:
                continue
            clauses.append(f"topic{position} IN ({','.join('?' * len(options))})")
            args += [_hash(t) for t in options]
        sql = f"SELECT log FROM logs WHERE {' AND '.join(clauses)} ORDER BY block, log_index"
        return [json.loads(row[0]) for row in self.ledger.query(sql, tuple(args))]

    def _range_end(self, tag: Any, head: int) -> int:
        """A log range's end: a tag, or any number (past the head is checked later)."""
        if tag is None or tag in ("latest", "pending", "safe", "finalized"):
            return head
        return 0 if tag == "earliest" else _quantity(tag)

    # -- filters (kept in memory; a restart forgets them, as geth does) ------------
    def _new_filter(self, kind: str, criteria: dict[str, Any] | None) -> str:
        with self._filters_lock:
            filter_id = hx(next(self._filter_ids))
            self._filters[filter_id] = (kind, criteria, self.ledger.head().block_number)
        return filter_id

    def rpc_eth_newFilter(self, criteria: Any) -> str:
        if not isinstance(criteria, dict):
            raise ValueError("filter must be an object")
        self._logs(criteria, up_to_head=False)  # validate now, not at the first poll
        return self._new_filter("logs", criteria)

    def rpc_eth_newBlockFilter(self) -> str:
        return self._new_filter("blocks", None)

    def rpc_eth_newPendingTransactionFilter(self, *_full: Any) -> str:
        """Hashes of transactions accepted into the pool since the last poll."""
        with self._filters_lock:
            filter_id = hx(next(self._filter_ids))
            self._filters[filter_id] = ("pending", None, self.ledger.arrivals(None)[0])
        return filter_id

    def rpc_eth_uninstallFilter(self, filter_id: Any) -> bool:
        with self._filters_lock:
            return self._filters.pop(filter_id, None) is not None

    def _filter(self, filter_id: Any) -> tuple[str, Any, int]:
        try:
            return self._filters[filter_id]
        except KeyError:
            raise RpcError(-32000, "filter not found") from None

    def rpc_eth_getFilterLogs(self, filter_id: Any) -> list[Any]:
        kind, criteria, _ = self._filter(filter_id)
        if kind != "logs":
            raise RpcError(-32000, "filter is not a log filter")
        return self._logs(criteria, up_to_head=False)

    def rpc_eth_getFilterChanges(self, filter_id: Any) -> list[Any]:
        with self._filters_lock:
            kind, criteria, seen = self._filter(filter_id)
            head = self.ledger.head().block_number
            self._filters[filter_id] = (kind, criteria, head)
        if kind == "pending":
            cursor, hashes = self.ledger.arrivals(seen)
            with self._filters_lock:
                if filter_id in self._filters:
                    self._filters[filter_id] = (kind, criteria, cursor)
            return [hb(h) for h in hashes]
        if head <= seen:
            return []
        if kind == "blocks":
            rows = self.ledger.query(
                "SELECT hash FROM blocks WHERE number > ? AND number <= ? ORDER BY number",
                (seen, head))
            return [hb(h) for (h,) in rows]
        first = max(seen + 1, self._range_end(criteria.get("fromBlock", "earliest"), head))
        last = min(self._range_end(criteria.get("toBlock"), head), head)
        if first > last:
            return []
        return self.rpc_eth_getLogs({**criteria, "fromBlock": hx(first), "toBlock": hx(last)})

    # -- dev controls (anvil/hardhat names) --------------------------------------
    def rpc_evm_mine(self, timestamp: Any = None) -> str:
        self.ledger.mine(None if timestamp is None else _quantity(timestamp))
        return "0x0"

    def rpc_evm_increaseTime(self, seconds: Any) -> str:
        return hx(self.ledger.increase_time(_quantity(seconds)))

    def rpc_evm_setNextBlockTimestamp(self, timestamp: Any) -> None:
        self.ledger.set_next_timestamp(_quantity(timestamp))


def _error(req_id: Any, exc: RpcError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return {"jsonrpc": "2.0", "id": req_id, "error": error}
