"""Sending signed transactions to any Ethereum JSON-RPC node.

Keys never leave the process: transactions are built here with explicit gas,
nonce and EIP-1559 fees, signed by a local account and sent raw, so the same code
works against the embedded node, anvil, geth or an L2. A call that would revert
is caught by gas estimation and reported with its revert reason before anything
is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import TxReceipt

from databright.errors import ChainError, TransactionError

__all__ = ["Ledger", "revert_reason"]

T = TypeVar("T")
_GAS_MARGIN = 1.25
_DEFAULT_TIP = 10**9


def revert_reason(exc: BaseException) -> str:
    """The human part of a revert or node error message."""
    text = str(exc.args[0] if isinstance(exc, Web3Exception) and exc.args else exc)
    match = re.search(r"execution reverted:?\s*(.*)", text)
    if match and match.group(1):
        return match.group(1).strip().strip("'\"")
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return text or type(exc).__name__


class Ledger:
    """A web3 connection that can sign and send transactions."""

    def __init__(self, w3: Web3, *, receipt_timeout: float = 120.0) -> None:
        self.w3 = w3
        self.receipt_timeout = receipt_timeout
        self.chain_id: int = self.call_rpc(lambda: w3.eth.chain_id)

    def call_rpc(self, fn: Callable[[], T]) -> T:
        """Run a read, mapping node and transport failures into ``ChainError``."""
        try:
            return fn()
        except ContractLogicError as exc:
            raise TransactionError(revert_reason(exc)) from exc
        except (Web3Exception, OSError) as exc:
            raise ChainError(f"node error: {revert_reason(exc)}") from exc

    def balance(self, address: str) -> int:
        return self.call_rpc(lambda: self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def block_number(self) -> int:
        return self.call_rpc(lambda: self.w3.eth.block_number)

    # The rest of ``ChainHead`` (see ``_head``), for reads of a chain opened in-process.

    def block_hash(self, number: int) -> str | None:
        """Hex (no 0x) hash of block ``number``, or None when the chain is shorter."""
        if number < 0 or number > self.block_number():
            return None
        block = self.call_rpc(lambda: self.w3.eth.get_block(number))
        return bytes(block["hash"]).hex()

    def latest_timestamp(self) -> int:
        return int(self.call_rpc(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    def code(self, address: str) -> bytes:
        return bytes(self.call_rpc(lambda: self.w3.eth.get_code(Web3.to_checksum_address(address))))

    def call(self, to: str, data: bytes) -> bytes:
        return bytes(self.call_rpc(lambda: self.w3.eth.call({"to": Web3.to_checksum_address(to), "data": data})))

    def transact(
        self,
        account: LocalAccount,
        call: ContractFunction | None = None,
        *,
        to: str | None = None,
        value: int = 0,
        data: bytes = b"",
        gas: int | None = None,
    ) -> TxReceipt:
        """Sign and send one transaction and wait for its receipt.

        Raises ``TransactionError`` with the revert reason when the call would
        fail (nothing is sent then) or when it reverted on-chain.
        """
        tx: dict[str, Any] = {"from": account.address, "value": value, "chainId": self.chain_id}
        if call is not None:
            tx["to"] = call.address
            tx["data"] = call._encode_transaction_data()
        else:
            tx["to"] = Web3.to_checksum_address(to) if to else None
            tx["data"] = data
        if tx["to"] is None:
            del tx["to"]
        try:
            if gas is None:
                # Against the pending block, where the transaction will run: on
                # "latest" the block number is the last mined one, which makes
                # a reveal look too early and a balance checkpoint look cheaper
                # than it is (an overwrite instead of an append).
                estimate = self.w3.eth.estimate_gas(tx, "pending")  # type: ignore[arg-type]
                gas = int(estimate * _GAS_MARGIN) + 10_000
            block = self.w3.eth.get_block("latest")
            base_fee = int(block.get("baseFeePerGas", 0) or 0)
            tx.update(
                gas=gas,
                nonce=self.w3.eth.get_transaction_count(account.address, "pending"),
                maxPriorityFeePerGas=_DEFAULT_TIP,
                maxFeePerGas=2 * base_fee + _DEFAULT_TIP,
                type=2,
            )
            signed = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout, poll_latency=0.02
            )
        except ContractLogicError as exc:
            raise TransactionError(revert_reason(exc)) from exc
        except TimeExhausted as exc:
            raise ChainError(f"no receipt within {self.receipt_timeout:.0f}s: {exc}") from exc
        except Web3RPCError as exc:
            raise TransactionError(revert_reason(exc)) from exc
        except (Web3Exception, OSError) as exc:
            raise ChainError(f"node error: {revert_reason(exc)}") from exc
        if receipt["status"] != 1:
            raise TransactionError(f"transaction {tx_hash.to_0x_hex()} reverted")
        return receipt
