"""Decoding JSON-RPC parameters: quantities, data, addresses, hashes, call objects.

Every function raises ``ValueError`` on bad input, which the dispatcher turns into
-32602 "invalid params": nothing a client sends may surface as an internal error.
"""
from __future__ import annotations

from typing import Any

from ._call import AccessList, CallArgs

__all__ = ["access_list", "address", "call_args", "data", "hash32", "quantity"]

_UINT256 = 1 << 256
ZERO_ADDRESS = b"\x00" * 20
_CALL_TYPES = (0, 1, 2)  # blob (3) and set-code (4) calls are not supported


def quantity(value: Any) -> int:
    """A hex quantity (or a JSON integer) in [0, 2**256)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.startswith(("0x", "0X")):
        if not value[2:].isalnum():  # int() alone would accept "0x-1" or "0x1_0"
            raise ValueError(f"not a hex quantity: {value!r}")
        number = int(value[2:], 16)
    else:
        raise ValueError(f"not a hex quantity: {value!r}")
    if not 0 <= number < _UINT256:
        raise ValueError(f"quantity out of range: {value!r}")
    return number


def data(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"not hex data: {value!r}")
    return bytes.fromhex(value[2:])


def address(value: Any) -> bytes:
    raw = data(value)
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r}")
    return raw


def hash32(value: Any) -> bytes:
    digest = data(value)
    if len(digest) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return digest


def access_list(value: Any) -> AccessList:
    """``[{"address": ..., "storageKeys": [...]}, ...]`` as py-evm takes it."""
    if not isinstance(value, list):
        raise ValueError("accessList must be an array")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ValueError("accessList entries must be objects")
        keys = entry.get("storageKeys") or []
        if not isinstance(keys, list):
            raise ValueError("storageKeys must be an array")
        out.append((address(entry.get("address")),
                    tuple(int.from_bytes(hash32(k), "big") for k in keys)))
    return tuple(out)


def _optional(call: dict[str, Any], key: str) -> int | None:
    value = call.get(key)
    return None if value is None else quantity(value)


def call_args(call: Any) -> CallArgs:
    """A call object (``eth_call``, ``eth_estimateGas``, ``eth_createAccessList``)."""
    if not isinstance(call, dict):
        raise ValueError("call object must be an object")
    given, legacy = call.get("input"), call.get("data")
    if given is not None and legacy is not None and given != legacy:
        raise ValueError('both "data" and "input" are set and not equal. '
                         'Please use "input" to pass transaction call data')
    payload = data(given if given is not None else (legacy or "0x"))
    type_id = _optional(call, "type")
    if type_id is not None and type_id not in _CALL_TYPES:
        raise ValueError(f"transaction type {type_id} is not supported in calls")
    listed = call.get("accessList")
    return CallArgs(
        sender=address(call["from"]) if call.get("from") else ZERO_ADDRESS,
        to=address(call["to"]) if call.get("to") else b"",
        value=_optional(call, "value") or 0, data=payload, gas=_optional(call, "gas"),
        gas_price=_optional(call, "gasPrice"), max_fee=_optional(call, "maxFeePerGas"),
        tip=_optional(call, "maxPriorityFeePerGas"),
        access_list=None if listed is None else access_list(listed), type_id=type_id)
