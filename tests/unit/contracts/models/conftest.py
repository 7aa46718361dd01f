"""Fixtures for the ModelMarket contract tests (titanoboa)."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from eth_account.signers.local import LocalAccount

from tests.unit.contracts.models._helpers import create_dataset, deploy_pair, keyed_account, register


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    return deploy_pair()


@pytest.fixture(scope="module")
def data_market(pair: tuple[Any, Any]) -> Any:
    return pair[0]


@pytest.fixture(scope="module")
def model_market(pair: tuple[Any, Any]) -> Any:
    return pair[1]


@pytest.fixture(scope="module")
def creator() -> str:
    return boa.env.generate_address("mm-creator")


@pytest.fixture(scope="module")
def evaluator() -> str:
    return boa.env.generate_address("mm-evaluator")


@pytest.fixture(scope="module")
def owner() -> LocalAccount:
    return keyed_account(1)


@pytest.fixture(scope="module")
def user() -> LocalAccount:
    return keyed_account(2)


@pytest.fixture(scope="module")
def stranger() -> LocalAccount:
    return keyed_account(3)


@pytest.fixture(scope="module")
def dataset(data_market: Any, creator: str, evaluator: str) -> int:
    boa.env.set_balance(creator, 10**20)
    return create_dataset(data_market, creator, evaluator=evaluator)


@pytest.fixture(scope="module")
def model(model_market: Any, owner: LocalAccount, dataset: int) -> int:
    return register(model_market, owner.address, dataset)
