"""``eth_fillTransaction`` (geth): a call object completed into an unsigned transaction.

viem asks for it before every send and uses the node's nonce, gas and fees; geth
fills them as here: the pending nonce, an estimate, the suggested tip and a
maximum fee of twice the latest base fee over it (EIP-1559), or the legacy and
EIP-2930 shapes when a gas price is given.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rlp
from eth_hash.auto import keccak

from ._codec import checksum, hb, hx

__all__ = ["fill_transaction"]


def _quantity(call: dict[str, Any], name: str) -> int | None:
    value = call.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16)
    raise ValueError(f"{name} is not a hex quantity: {value!r}")


def _bytes(value: Any, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"not hex data: {value!r}")
    data = bytes.fromhex(value[2:])
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes: {value!r}")
    return data


def _access_list(value: Any) -> list[list[Any]]:
    if not isinstance(value, list):
        raise ValueError("accessList must be an array")
    return [[_bytes(e["address"], 20), [_bytes(k, 32) for k in e.get("storageKeys") or []]] for e in value]


def fill_transaction(call: Any, *, chain_id: int, pending_nonce: Callable[[bytes], int],
                     estimate: Callable[[dict[str, Any]], int], tip: Callable[[], int],
                     latest_base_fee: int) -> dict[str, Any]:
    """``{"raw": unsigned RLP, "tx": its JSON}``, as geth answers."""
    if not isinstance(call, dict):
        raise ValueError("transaction must be an object")
    sender = _bytes(call["from"], 20) if call.get("from") else b"\x00" * 20
    to = _bytes(call["to"], 20) if call.get("to") else b""
    data = _bytes(call.get("input") or call.get("data") or "0x")
    value = _quantity(call, "value") or 0
    nonce = _quantity(call, "nonce")
    nonce = pending_nonce(sender) if nonce is None else nonce
    gas = _quantity(call, "gas")
    gas = estimate(call) if gas is None else gas
    access = _access_list(call.get("accessList") or [])
    tx: dict[str, Any] = {"nonce": hx(nonce), "gas": hx(gas), "to": checksum(to) if to else None,
                          "value": hx(value), "input": hb(data), "from": checksum(sender), "chainId": hx(chain_id)}
    price = _quantity(call, "gasPrice")
    if price is not None:
        if call.get("accessList") is None:
            tx["type"] = hx(0)
            raw = rlp.encode([nonce, price, gas, to, value, data, 0, 0, 0])
        else:
            tx["type"] = hx(1)
            raw = b"\x01" + rlp.encode([chain_id, nonce, price, gas, to, value, data, access, 0, 0, 0])
        tx["gasPrice"] = hx(price)
    else:
        priority = _quantity(call, "maxPriorityFeePerGas")
        priority = tip() if priority is None else priority
        max_fee = _quantity(call, "maxFeePerGas")
        max_fee = priority + 2 * latest_base_fee if max_fee is None else max_fee
        if priority > max_fee:
            raise ValueError(f"maxFeePerGas ({max_fee}) < maxPriorityFeePerGas ({priority})")
        tx.update(type=hx(2), maxFeePerGas=hx(max_fee), maxPriorityFeePerGas=hx(priority))
        raw = b"\x02" + rlp.encode([chain_id, nonce, priority, max_fee, gas, to, value, data, access, 0, 0, 0])
    tx["accessList"] = [{"address": checksum(a), "storageKeys": [hb(k) for k in keys]} for a, keys in access]
    tx.update(hash=hb(keccak(raw)), v=hx(0), r=hx(0), s=hx(0), blockHash=None, blockNumber=None,
              transactionIndex=None)
    if tx["type"] != hx(0):
        tx["yParity"] = hx(0)
    return {"raw": hb(raw), "tx": tx}
