"""Fixtures for the embedded node: a funded genesis, a node, web3 on top, a counter."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import vyper
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.middleware import SignAndSendRawMiddlewareBuilder

from databright.chain.node import EmbeddedNode, EmbeddedProvider, Genesis

FIXTURES = Path(__file__).parent / "fixtures"
CHAIN_ID = 31_337_000
KEYS = ["0x" + f"{i:02x}" * 32 for i in range(1, 4)]


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: str


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    return [Account.from_key(k) for k in KEYS]


@pytest.fixture(scope="session")
def genesis(accounts: list[LocalAccount]) -> Genesis:
    return Genesis(chain_id=CHAIN_ID, alloc={a.address: 10**24 for a in accounts})


def compile_fixture(name: str) -> Artifact:
    """ABI and bytecode of ``fixtures/<name>.vy``."""
    out = vyper.compile_code((FIXTURES / f"{name}.vy").read_text(),
                             output_formats=["abi", "bytecode"])
    return Artifact(abi=out["abi"], bytecode=out["bytecode"])


@pytest.fixture(scope="session")
def counter_artifact() -> Artifact:
    return compile_fixture("counter")


@pytest.fixture
def node(tmp_path: Path, genesis: Genesis) -> Iterator[EmbeddedNode]:
    node = EmbeddedNode(tmp_path / "chain" / "chain.sqlite", genesis)
    yield node
    node.close()


@pytest.fixture
def w3(node: EmbeddedNode, accounts: list[LocalAccount]) -> Web3:
    w3 = Web3(EmbeddedProvider(node))
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(accounts), layer=0)
    w3.eth.default_account = accounts[0].address
    return w3


def _deploy(w3: Web3, artifact: Artifact, *args: Any) -> Contract:
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact())
    assert receipt.status == 1
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact.abi)


@pytest.fixture
def counter(w3: Web3, counter_artifact: Artifact) -> Contract:
    return _deploy(w3, counter_artifact, 5)


@pytest.fixture
def deploy() -> Any:
    """``deploy(w3, artifact, *args)`` -> a web3 contract at its new address."""
    return _deploy


@pytest.fixture
def sign_transfer() -> Any:
    """``sign_transfer(account, nonce, to=..., value=1, chain_id=...)`` -> raw tx bytes."""
    return _transfer


def _transfer(account: LocalAccount, nonce: int, to: str = "0x" + "22" * 20,
             value: int = 1, chain_id: int = CHAIN_ID) -> bytes:
    """A signed EIP-1559 transfer, ready for eth_sendRawTransaction."""
    tx = {"to": to, "value": value, "nonce": nonce, "chainId": chain_id, "gas": 21_000,
          "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
    return bytes(account.sign_transaction(tx).raw_transaction)
