from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from databright.cli import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def _run(*args: str) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def tables(folder: Path) -> tuple[Path, Path]:
    rows = [{"x": i, "y": i * 0.5, "label": "odd" if i % 2 else "even"} for i in range(12)]
    frame = pd.DataFrame(rows)
    seed, batch = folder / "seed.csv", folder / "batch.csv"
    frame.iloc[:6].to_csv(seed, index=False)
    frame.iloc[6:].to_csv(batch, index=False)
    return seed, batch


@pytest.fixture(scope="module")
def market_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with dev accounts, DataMarket deployed and one seeded table dataset."""
    home = tmp_path_factory.mktemp("home")
    seed, _ = tables(home.parent)
    for args in (
        ["init", "--accounts", "4"],
        ["deploy"],
        ["dataset", "create", "numbers", "--kind", "table", "--classes", "odd,even", "--seed", seed],
    ):
        try:
            main(["--home", str(home), *map(str, args)])
        except SystemExit as exc:
            assert not exc.code, f"{args} failed"
    return home


def as_json(out: str) -> object:
    return json.loads(out)
