"""Predictions answered by compute-market workers, through the installed command:
a user buys predictions from a server backed by three local workers, gets the
model's own answers, a lying worker is slashed on chain at settlement and the
honest ones are paid per prediction."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.test_model_cli import PRICE, cli, cli_json, fails, serve
from tests.unit.models.conftest import digits_tables

FEE = 10**9  # a worker's pay per prediction


@pytest.mark.slow
def test_workers_answer_paid_predictions_and_a_liar_is_slashed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = digits_tables(tmp_path)
    cli(home, "init", "--accounts", "4")
    cli(home, "deploy")
    cli(home, "dataset", "create", "digits", "--kind", "table", "--classes", ",".join(map(str, range(10))),
        "--seed", paths["seed"], "--validation", paths["validation"])
    cli(home, "--account", "dev1", "train", "1", "--steps", "40", "--register", "--price", f"{PRICE}wei",
        "--royalty", "10%")

    fails(home, "--account", "dev1", "model", "serve", "1", "--workers", "3", "--coordinator", "http://x",
          match="pass one")
    fails(home, "--account", "dev1", "model", "serve", "1", "--coordinator", "http://127.0.0.1:9",
          match="--coordinator needs --serving-job")
    fails(home, "--account", "dev2", "compute", "serving", "submit", "1", "--budget", "0.01ether", "--fee", "1gwei",
          match="not owned by")
    fails(home, "--account", "dev1", "compute", "serving", "submit", "1", "--budget", "0.01ether", "--fee", "1gwei",
          "--redundancy", "2", match="--redundancy is 1 or 3")
    usage = cli(home, "compute", "serving", "submit", "1", "--budget", "x", ok=False)
    assert usage.returncode == 2

    server = serve(home, "--threshold", "1ether", "--workers", "3", "--operator", "dev0", "--byzantine", "1",
                   "--fee", f"{FEE}wei", "--budget", "0.01ether")
    try:
        bought = cli_json(home, "--account", "dev3", "predict", "1", paths["queries"], "--deposit", "0.001ether")
        more = cli_json(home, "--account", "dev3", "predict", "1", paths["queries"])
        assert bought["paid_wei"] == 10 * PRICE and more["signed_wei"] == 20 * PRICE
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=180)
    assert server.returncode == 0, err  # it settled the serving job before it exited

    shown = cli_json(home, "compute", "serving", "show", "1")
    assert shown["status"] == "completed" and shown["fee_per_prediction_wei"] == FEE
    (slash,) = shown["slashes"]
    paid = {p["worker"]: p["predictions"] for p in shown["payments"]}
    assert slash["worker"] not in paid and len(paid) == 2 and set(paid.values()) == {20}
    assert shown["paid_wei"] == 40 * FEE and shown["compensation_wei"] == slash["amount_wei"] > 0

    # the model's own answers: the registered checkpoint run here
    from databright.models import ServedModel
    from databright.workspace import Workspace

    rows = pd.read_csv(paths["queries"]).drop(columns=["label"])
    ws = Workspace(home)
    try:
        served = ServedModel.load(ws.model_market, ws.store, 1)
        items = [json.dumps({k: float(v) for k, v in row.items()}).encode() for _, row in rows.iterrows()]
        local = served.predict(served.encode(items))
        evidence = json.loads(ws.store.get(slash["evidence"]))
    finally:
        ws.close()
    for answers in (bought, more):
        assert [p["label"] for p in answers["predictions"]] == [p.label for p in local]
        assert np.allclose([p["confidence"] for p in answers["predictions"]], [p.confidence for p in local],
                           atol=1e-6)
    assert evidence["kind"] == "databright.compute.serving-mismatch"
    assert evidence["submission"]["worker"] == slash["worker"]
    assert {e["worker"] for e in evidence["accepted_by"]} <= set(paid)
