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
from ._params import access_list, address, data, quantity

__all__ = ["fill_transaction"]


def _optional(call: dict[str, Any], name: str) -> int | None:
    value = call.get(name)
    return None if value is None else quantity(value)


def fill_transaction(call: Any, *, chain_id: int, pending_nonce: Callable[[bytes], int],
                     estimate: Callable[[dict[str, Any]], int], tip: Callable[[], int],
                     latest_base_fee: int) -> dict[str, Any]:
    """``{"raw": unsigned RLP, "tx": its JSON}``, as geth answers."""
    if not isinstance(call, dict):
        raise ValueError("transaction must be an object")
    sender = address(call["from"]) if call.get("from") else b"\x00" * 20
    to = address(call["to"]) if call.get("to") else b""
    payload = data(call.get("input") or call.get("data") or "0x")
    value = _optional(call, "value") or 0
    nonce = _optional(call, "nonce")
    nonce = pending_nonce(sender) if nonce is None else nonce
    gas = _optional(call, "gas")
    gas = estimate(call) if gas is None else gas
    entries = access_list(call.get("accessList") or [])
    access = [[a, [k.to_bytes(32, "big") for k in keys]] for a, keys in entries]
    tx: dict[str, Any] = {"nonce": hx(nonce), "gas": hx(gas), "to": checksum(to) if to else None,
                          "value": hx(value), "input": hb(payload), "from": checksum(sender), "chainId": hx(chain_id)}
    price = _optional(call, "gasPrice")
    if price is not None:
        if call.get("accessList") is None:
            tx["type"] = hx(0)
            raw = rlp.encode([nonce, price, gas, to, value, payload, 0, 0, 0])
        else:
            tx["type"] = hx(1)
            raw = b"\x01" + rlp.encode([chain_id, nonce, price, gas, to, value, payload, access, 0, 0, 0])
        tx["gasPrice"] = hx(price)
    else:
        priority = _optional(call, "maxPriorityFeePerGas")
        priority = tip() if priority is None else priority
        max_fee = _optional(call, "maxFeePerGas")
        max_fee = priority + 2 * latest_base_fee if max_fee is None else max_fee
        if priority > max_fee:
            raise ValueError(f"maxFeePerGas ({max_fee}) < maxPriorityFeePerGas ({priority})")
        tx.update(type=hx(2), maxFeePerGas=hx(max_fee), maxPriorityFeePerGas=hx(priority))
        raw = b"\x02" + rlp.encode([chain_id, nonce, priority, max_fee, gas, to, value, payload, access, 0, 0, 0])
    tx["accessList"] = [{"address": checksum(a), "storageKeys": [hb(k.to_bytes(32, "big")) for k in keys]}
                        for a, keys in entries]
    tx.update(hash=hb(keccak(raw)), v=hx(0), r=hx(0), s=hx(0), blockHash=None, blockNumber=None,
              transactionIndex=None)
    if tx["type"] != hx(0):
        tx["yParity"] = hx(0)
    return {"raw": hb(raw), "tx": tx}
