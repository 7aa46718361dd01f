from __future__ import annotations

import pytest

from tests.unit.ml._digits import Digits, digits_table


@pytest.fixture(scope="session")
def digits() -> Digits:
    return digits_table()
