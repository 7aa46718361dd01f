"""What every typed contract client shares: reads, sends and event decoding.

DataMarket's, ModelMarket's and ComputeMarket's clients differ only in the
functions and structs of their contracts; how a call is read, a transaction
sent, a created id found in a receipt and a log decoded is the same for all
three and lives here. ``DatasetPayerClient`` adds what the two markets that pay
datasets through DataMarket share: DataMarket's address and its training fees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import EventData, TxReceipt

from databright.chain._ledger import Ledger
from databright.errors import ChainError

__all__ = ["ContractClient", "DatasetPayerClient", "Event"]

ZERO_ADDRESS = "0x" + "00" * 20
_FEE_ABI: list[dict[str, Any]] = [{"type": "function", "name": "training_fee", "stateMutability": "view",
             "inputs": [{"name": "dataset_id", "type": "uint256"}],
             "outputs": [{"name": "", "type": "uint256"}]}]


@dataclass(frozen=True)
class Event:
    """One decoded contract event, in chain order."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str


def _fields(struct: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A returned struct as a dict, whether web3 gave a dict, a named tuple or a plain tuple."""
    if isinstance(struct, dict):
        return {n: struct[n] for n in names}
    if hasattr(struct, "_asdict"):
        data = struct._asdict()
        return {n: data[n] for n in names}
    return dict(zip(names, struct, strict=True))


def _normalise(value: Any) -> Any:
    """Bytes as ``bytes`` and addresses checksummed, so records compare equal across nodes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


class ContractClient:
    """One deployed contract, read and written through a ``Ledger``."""

    def __init__(self, ledger: Ledger, address: str, abi: list[dict[str, Any]]) -> None:
        self.ledger = ledger
        self.address = to_checksum_address(address)
        self.contract: Contract = ledger.w3.eth.contract(address=self.address, abi=abi)
        self._events = {
            bytes(Web3.keccak(text=f"{e['name']}({','.join(_abi_type(i) for i in e['inputs'])})")): e["name"]
            for e in abi
            if e.get("type") == "event"
        }

    def _read(self, name: str, *args: Any) -> Any:
        fn = getattr(self.contract.functions, name)
        return self.ledger.call_rpc(lambda: fn(*args).call())

    def _send(self, account: LocalAccount, name: str, *args: Any, value: int = 0) -> TxReceipt:
        fn = getattr(self.contract.functions, name)(*args)
        return self.ledger.transact(account, fn, value=value)

    def _created(self, receipt: TxReceipt, event: str, key: str) -> int:
        """``key`` of the ``event`` this contract emitted in ``receipt`` (the id or amount a write created)."""
        for item in self._receipt_events(receipt):
            if item.name == event:
                return int(item.args[key])
        raise ChainError(f"transaction {receipt['transactionHash'].to_0x_hex()} emitted no {event}")

    def _decode(self, log: Any) -> Event | None:
        topics = log["topics"]
        name = self._events.get(bytes(topics[0])) if topics else None
        if name is None:
            return None
        data: EventData = getattr(self.contract.events, name)().process_log(log)
        return Event(
            name=name,
            args={k: _normalise(v) for k, v in data["args"].items()},
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=bytes(log["transactionHash"]).hex(),
        )

    def _receipt_events(self, receipt: TxReceipt) -> list[Event]:
        """The events this contract (not another it called) emitted in ``receipt``."""
        events = []
        for log in receipt["logs"]:
            if to_checksum_address(log["address"]) == self.address:
                decoded = self._decode(log)
                if decoded is not None:
                    events.append(decoded)
        return events

    def events(self, from_block: int, to_block: int) -> Iterator[Event]:
        """Every event of this contract in ``[from_block, to_block]``, in order."""
        logs = self.ledger.call_rpc(
            lambda: self.ledger.w3.eth.get_logs(
                {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
            )
        )
        ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        for log in ordered:
            decoded = self._decode(log)
            if decoded is not None:
                yield decoded


class DatasetPayerClient(ContractClient):
    """A contract that pays datasets through the DataMarket it was deployed with."""

    def __init__(self, ledger: Ledger, address: str, abi: list[dict[str, Any]]) -> None:
        super().__init__(ledger, address, abi)
        self._data_market_address: str | None = None

    def data_market_address(self) -> str:
        # Fixed at deployment, so one read serves the client's lifetime.
        if self._data_market_address is None:
            self._data_market_address = to_checksum_address(self._read("data_market"))
        return self._data_market_address

    def training_fee(self, dataset_id: int) -> int:
        """What DataMarket charges now to train on ``dataset_id``."""
        contract = self.ledger.w3.eth.contract(address=to_checksum_address(self.data_market_address()), abi=_FEE_ABI)
        return int(self.ledger.call_rpc(lambda: contract.functions.training_fee(dataset_id).call()))


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind
