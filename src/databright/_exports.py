"""Packages whose re-exported names load on first use (PEP 562).

``databright.chain`` and ``databright.compute`` re-export classes whose modules
import web3, eth_account or torch, a second or more each. Python runs a
package's ``__init__`` before any of its modules, so eager re-exports would make
every user of one small module (the index reading the chain head, ``compute
jobs`` reading the coordinator's tables) pay for all of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]) -> tuple[Callable[[str], Any],
                                                                               Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose names ``modules[m]`` live in ``package.m``."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # an ordinary attribute from now on
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(home))

    return __getattr__, __dir__
