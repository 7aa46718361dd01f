"""What a read needs of the chain, without web3: the head, block hashes, code and view calls.

A command that answers from the index must first know that the index holds
every block up to the chain's head, on the chain it was built from. That takes
a handful of JSON-RPC calls, which ``RpcHead`` makes with a plain HTTP POST, so
such a command imports neither web3 nor eth_account (together about a second
of start-up). ``Ledger`` offers the same methods over web3 (``ChainHead``),
for the chain opened in-process.

``call_uint`` reads a view function whose parameters are static words
(``uint256``, ``address``, ``bool``) and whose result is one ``uint256``: the ABI
of those is one 32-byte word each, so no ABI library is needed either.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

from eth_hash.auto import keccak

from databright.errors import ChainError, TransactionError

__all__ = ["ChainHead", "RpcHead", "call_uint", "encode_call"]

_TIMEOUT_S = 60.0
_WORD = 32


class ChainHead(Protocol):
    """The reads ``Index.bind``, ``Index.caught_up`` and the read commands make of a chain."""

    @property
    def chain_id(self) -> int: ...

    def block_number(self) -> int: ...

    def block_hash(self, number: int) -> str | None:
        """Hex (no 0x) hash of block ``number``, or None when the chain is shorter."""

    def latest_timestamp(self) -> int: ...

    def code(self, address: str) -> bytes: ...

    def call(self, to: str, data: bytes) -> bytes:
        """``eth_call`` on the latest block; a revert raises ``TransactionError``."""


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]+", value):
        raise ChainError(f"node error: {what} is not a hex quantity: {value!r}")
    return int(value, 16)


def _data(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})*", value):
        raise ChainError(f"node error: {what} is not hex data: {value!r}")
    return bytes.fromhex(value[2:])


class RpcHead:
    """``ChainHead`` over JSON-RPC/HTTP with the standard library."""

    def __init__(self, url: str, *, timeout: float = _TIMEOUT_S) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # urllib would also open file: URLs
            raise ChainError(f"cannot reach the node at {url}: a JSON-RPC URL starts with http:// or https://")
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._chain_id: int | None = None

    def request(self, method: str, params: list[Any]) -> Any:
        """The result of one JSON-RPC call; a node's error becomes ``ChainError`` (a revert
        ``TransactionError``), as ``Ledger.call_rpc`` maps them."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        request = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # before OSError: it is one, but the node did answer
            raise ChainError(f"node error: {method} answered HTTP {exc.code} {exc.reason}") from exc
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ChainError(f"cannot reach the node at {self.url}: {reason}") from exc
        if not isinstance(reply, dict):
            raise ChainError(f"node error: {method} answered {str(reply)[:80]!r}, not a JSON-RPC response")
        error = reply.get("error")
        if error is not None:
            message = str(error.get("message", error) if isinstance(error, dict) else error)
            match = re.search(r"execution reverted:?\s*(.*)", message)
            if match:
                raise TransactionError(match.group(1).strip().strip("'\"") or message)
            raise ChainError(f"node error: {message}")
        return reply.get("result")

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _quantity(self.request("eth_chainId", []), "eth_chainId")
        return self._chain_id

    def block_number(self) -> int:
        return _quantity(self.request("eth_blockNumber", []), "eth_blockNumber")

    def block_hash(self, number: int) -> str | None:
        if number < 0:
            return None
        # a node answers null for a block past its head: no separate eth_blockNumber needed
        block = self.request("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            return None
        return _data(block.get("hash") if isinstance(block, dict) else block, "a block hash").hex()

    def latest_timestamp(self) -> int:
        block = self.request("eth_getBlockByNumber", ["latest", False])
        return _quantity(block.get("timestamp") if isinstance(block, dict) else block, "a block timestamp")

    def code(self, address: str) -> bytes:
        return _data(self.request("eth_getCode", [address, "latest"]), "eth_getCode")

    def call(self, to: str, data: bytes) -> bytes:
        return _data(self.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]), "eth_call")


def _word(kind: str, value: int | str | bool) -> bytes:
    if kind == "address":
        text = str(value)
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", text):
            raise ValueError(f"not an address: {value!r}")
        return bytes(12) + bytes.fromhex(text[2:])
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"not a bool: {value!r}")
        return int(value).to_bytes(_WORD, "big")
    bits = re.fullmatch(r"uint(\d*)", kind)
    if bits is None:
        raise ValueError(f"{kind} is not a static word type (uintN, address, bool)")
    size = int(bits.group(1) or 256)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**size:
        raise ValueError(f"{value!r} is not a {kind}")
    return value.to_bytes(_WORD, "big")


def encode_call(signature: str, *args: int | str | bool) -> bytes:
    """Calldata of ``signature`` (``"withdrawable(uint256,address)"``) with ``args``."""
    match = re.fullmatch(r"(\w+)\(([\w,]*)\)", signature)
    if match is None:
        raise ValueError(f"not a function signature: {signature!r}")
    kinds = [k for k in match.group(2).split(",") if k]
    if len(kinds) != len(args):
        raise ValueError(f"{signature} takes {len(kinds)} arguments, not {len(args)}")
    return keccak(signature.encode())[:4] + b"".join(_word(k, a) for k, a in zip(kinds, args, strict=True))


def call_uint(head: ChainHead, to: str, signature: str, *args: int | str | bool) -> int:
    """The ``uint256`` that view function ``signature`` of contract ``to`` returns."""
    result = head.call(to, encode_call(signature, *args))
    if len(result) != _WORD:
        raise ChainError(f"{signature} at {to} returned {len(result)} bytes, not one uint256 (is it deployed?)")
    return int.from_bytes(result, "big")
