"""Fixtures for the ComputeMarket contract tests (titanoboa), on the real DataMarket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.contracts.compute._helpers import TRAINING_FEE, create_dataset, deploy_markets, funded


@pytest.fixture(scope="module")
def markets() -> tuple[Any, Any]:
    return deploy_markets()


@pytest.fixture(scope="module")
def data_market(markets: tuple[Any, Any]) -> Any:
    return markets[0]


@pytest.fixture(scope="module")
def compute_market(markets: tuple[Any, Any]) -> Any:
    return markets[1]


@pytest.fixture(scope="module")
def creator() -> str:
    return funded("cm-creator")


@pytest.fixture(scope="module")
def dataset(data_market: Any, creator: str) -> int:
    return create_dataset(data_market, creator, training_fee=TRAINING_FEE)


@pytest.fixture(scope="module")
def submitter() -> str:
    return funded("cm-submitter")


@pytest.fixture(scope="module")
def coordinator() -> str:
    return funded("cm-coordinator")


@pytest.fixture(scope="module")
def workers() -> list[str]:
    return [funded(f"cm-worker-{i}") for i in range(4)]


@pytest.fixture(scope="module")
def stranger() -> str:
    return funded("cm-stranger")
