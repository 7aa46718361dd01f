"""The ledger backends the contract suite runs against: embedded and anvil."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from databright.chain import DataMarket, Ledger, compile_contract, deploy
from databright.chain.node import EmbeddedNode, EmbeddedProvider, Genesis
from tests._servers import Anvil

FUNDS = 1_000 * 10**18


@dataclass
class Backend:
    name: str
    ledger: Ledger
    accounts: list[LocalAccount]
    market: DataMarket

    def advance(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block."""
        provider = self.ledger.w3.provider
        provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _accounts(n: int) -> list[LocalAccount]:
    return [Account.from_key(bytes([i + 1]) * 32) for i in range(n)]


def _with_market(name: str, w3: Web3, accounts: list[LocalAccount], cache: Path) -> Backend:
    ledger = Ledger(w3)
    deployment = deploy(ledger, accounts[0], cache)
    compiled = compile_contract("data_market", cache)
    return Backend(name, ledger, accounts, DataMarket(ledger, deployment.address("DataMarket"), compiled.abi))


@pytest.fixture(scope="session")
def contract_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contracts")


@pytest.fixture(params=["embedded", "anvil"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, contract_cache: Path) -> Iterator[Backend]:
    accounts = _accounts(6)
    cache = contract_cache
    if request.param == "embedded":
        genesis = Genesis(chain_id=31415, alloc={a.address: FUNDS for a in accounts})
        node = EmbeddedNode(tmp_path / "chain.sqlite", genesis)
        try:
            yield _with_market("embedded", Web3(EmbeddedProvider(node)), accounts, cache)
        finally:
            node.close()
    else:
        anvil = Anvil()
        try:
            for a in accounts:
                anvil.fund(a.address, FUNDS)
            yield _with_market("anvil", Web3(Web3.HTTPProvider(anvil.url)), accounts, cache)
        finally:
            anvil.close()

