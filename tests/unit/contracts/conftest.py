"""Fixtures for the DataMarket contract tests (titanoboa)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boa
import pytest

# Test modules here import `market_helpers` (a name unique across tests/);
# conftest files are not put on sys.path by pytest, so add this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from market_helpers import CONTRACT, make_account  # noqa: E402

HOLDER = Path(__file__).resolve().parent / "helpers/holder.vy"


@pytest.fixture(scope="module")
def market() -> Any:
    return boa.load(str(CONTRACT))


@pytest.fixture(autouse=True)
def _isolate() -> Iterator[None]:
    with boa.env.anchor():
        yield


@pytest.fixture(scope="module")
def creator() -> str:
    return make_account("creator")


@pytest.fixture(scope="module")
def alice() -> str:
    return make_account("alice")


@pytest.fixture(scope="module")
def bob() -> str:
    return make_account("bob")


@pytest.fixture(scope="module")
def carol() -> str:
    return make_account("carol")


@pytest.fixture(scope="module")
def evaluator() -> str:
    return make_account("evaluator")




@pytest.fixture(scope="module")
def holder_deployer() -> Any:
    return boa.load_partial(str(HOLDER))
