"""A small home for the web tests: a dataset of eight images (dev0) and one open proposal (dev1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from databright.chain import DatasetParams
from databright.demo import write_png
from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
from databright.web import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace

BIN = Path(sys.executable).parent / "databright"


def write_batch(folder: Path, labels: list[str], seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    lines = ["file,label"]
    for i, label in enumerate(labels):
        (folder / f"img-{i}.png").write_bytes(write_png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
        lines.append(f"img-{i}.png,{label}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def init_home(home: Path, accounts: int = 4) -> None:
    """A home with dev accounts and DataMarket deployed, made by the installed command."""
    for args in (["init", "--accounts", str(accounts)], ["deploy"]):
        done = subprocess.run([str(BIN), "--home", str(home), *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_home(tmp_path_factory.mktemp("webapi"))


def make_home(root: Path) -> Path:
    """A home with dataset 1 ("shapes", seeded by dev0) and dev1's proposal 2 open."""
    home = root / "home"
    init_home(home)
    ws = Workspace(home)
    try:
        seed = load_batch(ws, write_batch(root / "seed", list("abab"), 1))
        meta = DatasetMetadata("shapes", "Tiny test images.", "files", ("a", "b"), "CC0")
        params = DatasetParams(metadata_digest=b"\0" * 32, initial_shares=1000, base_reward_per_item=10)
        dataset_id, _ = create_dataset(ws, ws.signer("dev0"), meta, params, seed=seed)
        batch = load_batch(ws, write_batch(root / "batch", list("aabb"), 2))
        propose_batch(ws, ws.signer("dev1"), dataset_id, batch)
    finally:
        ws.close()
    return home


@pytest.fixture(scope="package")
def app_ws(home: Path) -> Iterator[Workspace]:
    ws = Workspace(home)
    yield ws
    ws.close()


@pytest.fixture()
def client(app_ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(app_ws, secret="test-secret", max_upload_bytes=200_000,
                                allowed_hosts=[*DEFAULT_HOSTS, "testserver"])) as client:
        yield client


def csrf(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/v1/session").json()["csrf_token"]}


def sign_in(client: TestClient, account: str, password: str = "databright") -> dict[str, str]:
    reply = client.post("/api/v1/auth/local", json={"account": account, "password": password}, headers=csrf(client))
    assert reply.status_code == 200, reply.text
    return {"X-CSRF-Token": reply.json()["csrf_token"]}
