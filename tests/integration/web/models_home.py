"""A home with digits table models for the model pages: dev1 trains and registers model 1, dev2 (the
dataset's evaluator) verifies its score; dev3 registers model 2, unverified. Model 1's prediction
server runs in this process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import uvicorn

from databright.models import PaymentGate, ServedModel, VoucherStore, create_app
from databright.workspace import Workspace
from tests._servers import free_port
from tests.unit.models.conftest import PRICE, STEPS, cli, digits_tables

__all__ = ["PRICE", "build_home", "prediction_server", "query_rows"]


def build_home(root: Path) -> tuple[Path, dict[str, Path]]:
    home, data = root / "home", root / "data"
    data.mkdir(parents=True)
    paths = digits_tables(data)
    cli(home, "init", "--accounts", "5")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2")
    cli(home, "--account", "dev1", "train", "1", "--steps", STEPS, "--register", "--price", f"{PRICE}wei",
        "--royalty", "10%")
    cli(home, "--account", "dev2", "model", "verify", "1")
    # A second model, never verified: it ranks below the verified one whatever it claims.
    cli(home, "--account", "dev3", "train", "1", "--steps", "60", "--seed", "1", "--register", "--price",
        f"{2 * PRICE}wei", "--royalty", "20%")
    return home, paths


def query_rows(paths: dict[str, Path], count: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(paths["queries"]).drop(columns=["label"]).head(count)
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows


@contextmanager
def prediction_server(ws: Workspace, model_id: int, vouchers: Path) -> Iterator[str]:
    """Model ``model_id`` served over real HTTP on 127.0.0.1 from a thread; yields its URL."""
    mm = ws.model_market
    store = VoucherStore(vouchers)
    app = create_app(ServedModel.load(mm, ws.store, model_id), PaymentGate(mm, model_id, store, ttl=0.0))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/v1/models/{model_id}", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
