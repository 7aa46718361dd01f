"""Calls that do not become transactions: ``eth_call``, ``eth_estimateGas``,
``eth_createAccessList``, with geth's semantics.

A call runs on the state *after* the block it names, in that block's own context
(number, timestamp, coinbase, prevrandao, gas limit, base fee), as geth runs it;
``pending`` is the block after the head. Every field of the call object counts:
gas, value, the fee fields (legacy ``gasPrice`` or EIP-1559 caps, which also decide
whether the sender must afford the gas), the access list (warm slots, intrinsic
gas) and the transaction type.

Like geth (``NoBaseFee``), a call without a gas price is not charged and sees a
base fee of 0; one with a price pays it and sees the block's base fee. User
errors come back as geth words them (-32000), never as internal errors.

``eth_estimateGas`` and ``eth_createAccessList`` without a block tag run in the
pending block (the one the transaction is for): this chain mines on demand, so
its latest block can be far behind the clock.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

from eth._utils.address import generate_contract_address
from eth.abc import BlockHeaderAPI, ComputationAPI, SignedTransactionAPI
from eth.chains.base import Chain
from eth.vm.spoof import SpoofTransaction
from eth_typing import Address
from eth_utils.exceptions import ValidationError

from ._codec import base_fee, checksum
from ._evm import _BUILDER, RpcError, check_fee_caps

# py-evm's typed-transaction builder (Berlin and later); its declared API lacks these
_TYPED: Any = _BUILDER

__all__ = ["AccessList", "CallArgs", "access_list_of", "run_call"]

AccessList = tuple[tuple[bytes, tuple[int, ...]], ...]


@dataclass(frozen=True)
class CallArgs:
    """A decoded call object (see ``_rpc.call_args``); ``None``: not given."""

    sender: bytes
    to: bytes  # b"": contract creation
    value: int
    data: bytes
    gas: int | None
    gas_price: int | None
    max_fee: int | None
    tip: int | None
    access_list: AccessList | None
    type_id: int | None

    def with_gas(self, gas: int) -> CallArgs:
        return replace(self, gas=gas)

    def with_access_list(self, access_list: AccessList) -> CallArgs:
        return replace(self, access_list=access_list)

    @property
    def dynamic(self) -> bool:
        """EIP-1559 pricing: either cap given (or the type asks for it)."""
        return self.max_fee is not None or self.tip is not None or self.type_id == 2


@dataclass(frozen=True)
class _Pricing:
    fee_cap: int  # what the balance must cover per unit of gas
    tip: int
    price: int  # what the sender would pay per unit of gas


def _pricing(args: CallArgs, block_fee: int) -> _Pricing:
    """geth's ``ToMessage``: legacy price, or EIP-1559 caps priced at the block's base fee."""
    if args.gas_price is not None and (args.max_fee is not None or args.tip is not None):
        raise RpcError(-32602, "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) "
                               "specified")
    if args.dynamic:
        fee_cap, tip = args.max_fee or 0, args.tip or 0
        price = 0 if fee_cap == tip == 0 else min(fee_cap, tip + block_fee)
        return _Pricing(fee_cap, tip, price)
    price = args.gas_price or 0
    return _Pricing(price, price, price)


@contextmanager
def _prepared(chain: Chain, context: BlockHeaderAPI, chain_id: int,
              args: CallArgs) -> Iterator[tuple[Any, SignedTransactionAPI]]:
    """The VM state for ``context`` and the spoofed transaction for ``args``,
    checked as geth's state transition checks a message; reverted on exit."""
    block_fee = base_fee(context)
    pricing = _pricing(args, block_fee)
    charged = pricing.fee_cap != 0 or pricing.tip != 0
    if charged:  # geth skips these for an unpriced call (NoBaseFee)
        check_fee_caps(pricing.tip, pricing.fee_cap, args.sender)
        if pricing.fee_cap < block_fee:
            raise RpcError(-32000, f"max fee per gas less than block base fee: address "
                                   f"{checksum(args.sender)}, maxFeePerGas: "
                                   f"{pricing.fee_cap}, baseFee: {block_fee}")
    gas = min(args.gas if args.gas is not None else context.gas_limit, context.gas_limit)
    if pricing.price == 0 and block_fee != 0:
        context = context.copy(base_fee_per_gas=0)  # what BASEFEE reads, as in geth
    vm = chain.get_vm(context)
    state = vm.state
    sender = Address(args.sender)
    nonce = state.get_nonce(sender)
    access_list = args.access_list or ()
    to = Address(args.to)
    if args.dynamic and charged:
        tx: Any = _TYPED.new_unsigned_dynamic_fee_transaction(
            chain_id, nonce, pricing.tip, pricing.fee_cap, gas, to, args.value, args.data,
            access_list)
    elif access_list or args.type_id in (1, 2):
        tx = _TYPED.new_unsigned_access_list_transaction(
            chain_id, nonce, pricing.price, gas, to, args.value, args.data, access_list)
    else:
        tx = vm.create_unsigned_transaction(nonce=nonce, gas_price=pricing.price, gas=gas,
                                            to=to, value=args.value, data=args.data)
    spoof = cast(SignedTransactionAPI, SpoofTransaction(tx, from_=args.sender))
    if gas < spoof.intrinsic_gas:
        raise RpcError(-32000, f"intrinsic gas too low: have {gas}, want {spoof.intrinsic_gas}")
    balance = state.get_balance(sender)
    want = gas * pricing.fee_cap + args.value
    if balance < want:
        raise RpcError(-32000, f"insufficient funds for gas * price + value: address "
                               f"{checksum(args.sender)} have {balance} want {want}")
    snapshot = state.snapshot()
    try:
        yield state, spoof
    finally:
        state.revert(snapshot)


def _apply(state: Any, tx: SignedTransactionAPI) -> ComputationAPI:
    try:
        return cast(ComputationAPI, state.apply_transaction(tx))
    except ValidationError as exc:  # what the checks above did not foresee
        raise RpcError(-32000, f"invalid call: {exc}") from exc


def run_call(chain: Chain, context: BlockHeaderAPI, chain_id: int,
             args: CallArgs) -> ComputationAPI:
    """Run ``args`` on the state ``context`` starts from (see the module docstring)."""
    with _prepared(chain, context, chain_id, args) as (state, tx):
        return _apply(state, tx)


def access_list_of(chain: Chain, context: BlockHeaderAPI, chain_id: int,
                   args: CallArgs) -> tuple[AccessList, ComputationAPI]:
    """The addresses and slots ``args`` touches (geth's access-list tracer), run
    again with that list until it stops changing; with the last run's result.

    Recorded as the EVM first marks each warm (EIP-2929), which is every account
    or slot an opcode touches; the input list, seeded in, stays in the result.
    The sender, the recipient and the precompiles are warm anyway, so they appear
    only with storage slots, as in geth (the zero-address coinbase likewise).
    """
    access_list = args.access_list or ()
    for _ in range(16):  # geth iterates until stable; each round can only grow it
        with _prepared(chain, context, chain_id, args.with_access_list(access_list)) as (
                state, tx):
            touched: dict[bytes, set[int]] = {bytes(a): set(keys) for a, keys in access_list}
            mark_address, mark_slot = state.mark_address_warm, state.mark_storage_warm

            def address_warm(address: Address, _mark: Any = mark_address) -> None:
                touched.setdefault(bytes(address), set())
                _mark(address)

            def slot_warm(address: Address, slot: int, _mark: Any = mark_slot) -> None:
                touched.setdefault(bytes(address), set()).add(slot)
                _mark(address, slot)

            # This state object lives for this one run: shadow its two methods.
            state.mark_address_warm, state.mark_storage_warm = address_warm, slot_warm
            computation = _apply(state, tx)
            precompiles = set(state.computation_class.get_precompiles())
            recipient = args.to or generate_contract_address(Address(args.sender), tx.nonce)
        skip = {args.sender, bytes(recipient), bytes(context.coinbase)}
        skip |= {bytes(p) for p in precompiles}
        found: AccessList = tuple(
            (address, tuple(sorted(slots))) for address, slots in sorted(touched.items())
            if slots or address not in skip)
        if found == access_list:
            return found, computation
        access_list = found
    return access_list, computation
