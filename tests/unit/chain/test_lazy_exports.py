"""Re-exported names of the lazily loading packages stay what they name, whatever was imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["databright.chain", "databright.compute"])
def test_a_name_is_not_shadowed_by_a_submodule_imported_first(package: str) -> None:
    # Import every submodule first (what any user of one of them does), then read each exported name:
    # a submodule of the same name as an export would replace it as the package's attribute.
    code = f"""
import importlib, pkgutil, types
import {package} as package
for info in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"{package}." + info.name)
for name in package.__all__:
    value = getattr(package, name)
    assert not isinstance(value, types.ModuleType), name
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
