"""Ethereum JSON-RPC 2.0 for the embedded ledger: method dispatch and an HTTP server.

The dispatcher works on already-decoded JSON (``dict``/``list``) so the in-process
web3 provider and the HTTP server answer with exactly the same bytes.
"""
from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth.exceptions import Revert
from eth_abi.abi import decode as abi_decode

from ._codec import base_fee, hb, hx
from ._evm import DEFAULT_PRIORITY_FEE, ChainReader, RpcError
from ._fill import fill_transaction

__all__ = ["Dispatcher", "RpcServer"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_RECEIPT_WAIT_S = 2.0


def _quantity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16)
    raise ValueError(f"not a hex quantity: {value!r}")


def _data(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"not hex data: {value!r}")
    return bytes.fromhex(value[2:])


def _address(value: Any) -> bytes:
    address = _data(value)
    if len(address) != 20:
        raise ValueError(f"not an address: {value!r}")
    return address


def _hash(value: Any) -> bytes:
    digest = _data(value)
    if len(digest) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return digest


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

    def __init__(self, ledger: ChainReader, client_version: str) -> None:
        self.ledger = ledger
        self.client_version = client_version
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
        if not isinstance(params, list):
            raise RpcError(INVALID_PARAMS, "params must be an array")
        try:
            return handler(*params)
        except RpcError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
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

    def rpc_eth_getTransactionCount(self, address: Any, tag: Any = "latest") -> str:
        if tag == "pending":
            return hx(self.ledger.pending_nonce(_address(address)))
        with self.ledger.state_at(self._header(tag)) as state:
            return hx(state.get_nonce(_address(address)))

    # -- execution ---------------------------------------------------------------
    def _run(self, call: dict[str, Any], tag: Any, gas: int | None = None) -> Any:
        if not isinstance(call, dict):
            raise ValueError("call object must be an object")
        header = self._header(tag)
        sender = _address(call["from"]) if call.get("from") else b"\x00" * 20
        to = _address(call["to"]) if call.get("to") else b""
        data = _data(call.get("input") or call.get("data") or "0x")
        value = _quantity(call.get("value", 0))
        if gas is None:
            gas = _quantity(call["gas"]) if call.get("gas") else header.gas_limit
        return self.ledger.execute(header, sender, to, value, data, min(gas, header.gas_limit))

    @staticmethod
    def _raise_if_error(computation: Any) -> None:
        if computation.is_error:
            if isinstance(computation.error, Revert):
                raise revert_error(bytes(computation.output))
            raise RpcError(-32000, f"execution failed: {computation.error!r}")

    def rpc_eth_call(self, call: Any, tag: Any = "latest", *_overrides: Any) -> str:
        computation = self._run(call, tag)
        self._raise_if_error(computation)
        return hb(computation.output)

    def rpc_eth_estimateGas(self, call: Any, tag: Any = "latest", *_overrides: Any) -> str:
        header = self._header(tag)
        cap = _quantity(call["gas"]) if call.get("gas") else header.gas_limit
        first = self._run(call, tag, cap)
        self._raise_if_error(first)
        # Gas before refunds is what the transaction needs to hold; the 63/64 rule
        # can demand more, so confirm and search upwards only when that fails.
        data = _data(call.get("input") or call.get("data") or "0x")
        guess = max(cap - first.get_gas_remaining(), data_floor_gas(data))
        high = cap
        if self._succeeds(call, tag, guess):
            return hx(guess)
        low = guess
        while high - low > max(1, high // 200):
            mid = (low + high) // 2
            if self._succeeds(call, tag, mid):
                high = mid
            else:
                low = mid
        return hx(high)

    def _succeeds(self, call: dict[str, Any], tag: Any, gas: int) -> bool:
        try:
            return not self._run(call, tag, gas).is_error
        except Exception:  # noqa: BLE001 - e.g. intrinsic gas above the trial gas
            return False

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
        if not rows and pending:
            # The miner takes the pool at once; waiting a moment here spares
            # polling clients (web3 sleeps 100 ms between polls) a round trip.
            self.ledger.wait_mined(digest, _RECEIPT_WAIT_S)
            rows = self.ledger.query("SELECT receipt FROM txs WHERE hash = ?", (digest,))
        if not rows:
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

    def rpc_eth_getLogs(self, criteria: Any) -> list[Any]:
        if not isinstance(criteria, dict):
            raise ValueError("filter must be an object")
        clauses: list[str] = []
        args: list[Any] = []
        if criteria.get("blockHash"):
            rows = self.ledger.query("SELECT number FROM blocks WHERE hash = ?",
                                     (_hash(criteria["blockHash"]),))
            if not rows:
                raise RpcError(-32000, "unknown block")
            clauses.append("block = ?")
            args.append(rows[0][0])
        else:
            first = self._number(criteria.get("fromBlock", "latest"), must_exist=False)
            last = self._number(criteria.get("toBlock", "latest"), must_exist=False)
            head = self.ledger.head().block_number
            first = head if first is None else first
            last = head if last is None else last
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

    # -- filters (kept in memory; a restart forgets them, as geth does) ------------
    def _new_filter(self, kind: str, criteria: dict[str, Any] | None) -> str:
        with self._filters_lock:
            filter_id = hx(next(self._filter_ids))
            self._filters[filter_id] = (kind, criteria, self.ledger.head().block_number)
        return filter_id

    def rpc_eth_newFilter(self, criteria: Any) -> str:
        if not isinstance(criteria, dict):
            raise ValueError("filter must be an object")
        self.rpc_eth_getLogs(criteria)  # validate now, not at the first poll
        return self._new_filter("logs", criteria)

    def rpc_eth_newBlockFilter(self) -> str:
        return self._new_filter("blocks", None)

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
        return self.rpc_eth_getLogs(criteria)

    def rpc_eth_getFilterChanges(self, filter_id: Any) -> list[Any]:
        with self._filters_lock:
            kind, criteria, seen = self._filter(filter_id)
            head = self.ledger.head().block_number
            self._filters[filter_id] = (kind, criteria, head)
        if head <= seen:
            return []
        if kind == "blocks":
            rows = self.ledger.query(
                "SELECT hash FROM blocks WHERE number > ? AND number <= ? ORDER BY number",
                (seen, head))
            return [hb(h) for (h,) in rows]
        first = max(seen + 1, self._number(criteria.get("fromBlock", "earliest")) or 0)
        last = self._number(criteria.get("toBlock", "latest"), must_exist=False)
        last = head if last is None else min(last, head)
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per response and no Nagle: otherwise headers and body go
    # out as two segments and delayed ACKs add ~40 ms to every keep-alive request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: RpcServer

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.send_header("Access-Control-Max-Age", "86400")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, json.dumps({"client": self.server.dispatcher.client_version}).encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        response = self.server.dispatcher.handle_bytes(body)
        self._reply(200, response if response is not None else b"")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class RpcServer(ThreadingHTTPServer):
    """JSON-RPC over HTTP on a background thread; ``.port`` and ``.shutdown()``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dispatcher: Dispatcher, host: str, port: int) -> None:
        self.dispatcher = dispatcher
        super().__init__((host, port), _Handler)
        self.host = host
        self.port = int(self.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.serve_forever, name="databright-rpc",
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def start(self) -> RpcServer:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread.is_alive():
            super().shutdown()
            self._thread.join(timeout=5)
        self.server_close()
