"""Each part re-exports its public names in a sorted ``__all__`` that resolves."""

from __future__ import annotations

import importlib

import pytest

PARTS = [
    "databright.chain",
    "databright.compute",
    "databright.cli",
    "databright.errors",
    "databright.index",
    "databright.ml",
    "databright.models",
    "databright.storage",
    "databright.valuation",
    "databright.web",
]


@pytest.mark.parametrize("name", PARTS)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is exported but missing"
