"""A home with a digits table dataset and a model trained and registered on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from databright.cli import main
from databright.workspace import Workspace

PRICE = 10**12  # wei per prediction
STEPS = "40"


def digits_tables(folder: Path) -> dict[str, Path]:
    digits = load_digits()
    order = np.random.default_rng(5).permutation(len(digits.target))
    frame = pd.DataFrame(digits.data[order], columns=[f"p{i:02d}" for i in range(64)])
    frame["label"] = digits.target[order].astype(str)
    parts = {"seed": frame.iloc[:300], "validation": frame.iloc[1500:1700], "queries": frame.iloc[1700:1710]}
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.csv"
        part.to_csv(paths[name], index=False)
    return paths


def cli(home: Path, *args: object) -> None:
    try:
        main(["--home", str(home), *map(str, args)])
    except SystemExit as exc:
        assert not exc.code, f"{args} failed"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """dev0 creates the dataset (training fee 0.1 ETH), dev1 trains and registers model 1."""
    home = tmp_path_factory.mktemp("model-home")
    paths = digits_tables(home.parent)
    cli(home, "init", "--accounts", "4")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2")
    cli(home, "--account", "dev1", "train", "1", "--steps", STEPS, "--register", "--price", f"{PRICE}wei",
        "--royalty", "10%")
    return home, paths


@pytest.fixture
def ws(model_home: tuple[Path, dict[str, Path]]) -> Iterator[Workspace]:
    workspace = Workspace(model_home[0], account="dev1")
    try:
        yield workspace
    finally:
        workspace.close()
