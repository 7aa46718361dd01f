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


def digits_images(folder: Path) -> dict[str, Path]:
    """Folders of 8x8 grey PNG digits with labels.csv: seed, validation and queries."""
    from PIL import Image

    digits = load_digits()
    out = {}
    for name, start, stop in (("seed", 0, 200), ("validation", 1500, 1600), ("queries", 1600, 1604)):
        target = folder / f"images-{name}"
        target.mkdir()
        rows = []
        for i in range(start, stop):
            pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(target / f"{i}.png")
            rows.append({"file": f"{i}.png", "label": str(digits.target[i])})
        pd.DataFrame(rows).to_csv(target / "labels.csv", index=False)
        out[name] = target
    return out


def cli(home: Path, *args: object) -> None:
    try:
        main(["--home", str(home), *map(str, args)])
    except SystemExit as exc:
        assert not exc.code, f"{args} failed"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """dev0 creates the datasets (training fee 0.1 ETH), dev1 trains and registers model 1 on
    table rows and model 2 on images."""
    home, data = tmp_path_factory.mktemp("model-home"), tmp_path_factory.mktemp("model-data")
    paths = digits_tables(data)
    images = digits_images(data)
    cli(home, "init", "--accounts", "4")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2")
    cli(home, "--account", "dev1", "train", "1", "--steps", STEPS, "--register", "--price", f"{PRICE}wei",
        "--royalty", "10%")
    cli(home, "dataset", "create", "digit-images", "--classes", ",".join(map(str, range(10))),
        "--seed", images["seed"], "--validation", images["validation"], "--evaluator", "dev2")
    cli(home, "--account", "dev1", "train", "2", "--steps", STEPS, "--register", "--price", f"{PRICE}wei",
        "--royalty", "5%")
    paths["image_queries"] = images["queries"]
    return home, paths


@pytest.fixture
def ws(model_home: tuple[Path, dict[str, Path]]) -> Iterator[Workspace]:
    workspace = Workspace(model_home[0], account="dev1")
    try:
        yield workspace
    finally:
        workspace.close()
