"""Training a model to register is reproducible, and its report re-runs bitwise."""

from __future__ import annotations

import json
from pathlib import Path

from databright.chain import ModelMarket
from databright.ml import ModelSpec
from databright.models import ServedModel, train_model, verify_training
from databright.storage import cid_from_digest
from databright.workspace import Workspace


def test_registered_model_reproduces(ws: Workspace) -> None:
    mm: ModelMarket = ws.model_market
    version = mm.version(1, 1)
    report_cid = str(cid_from_digest(version.report_digest))
    report = json.loads(ws.store.get(report_cid))
    assert report["checkpoint"] == str(cid_from_digest(version.checkpoint_digest))
    assert round(report["score"] * 1_000_000) == version.claimed_score
    assert verify_training(ws.store, report_cid)
    spec = ModelSpec.from_json(ws.store.get(report["spec"]))
    again = train_model(ws.store, 1, spec, report["accepted"], report["validation"], seed=0, steps=report["steps"])
    assert again.checkpoint_cid == report["checkpoint"]
    other = train_model(ws.store, 1, spec, report["accepted"], report["validation"], seed=1, steps=report["steps"])
    assert other.checkpoint_cid != report["checkpoint"]
    served = ServedModel.load(mm, ws.store, 1)
    assert served.checkpoint_cid == report["checkpoint"]


def test_missing_checkpoint_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    import pytest

    from databright.errors import InputError
    from databright.storage import open_store

    with pytest.raises(InputError, match="model 1 version 1"):
        ServedModel.load(ws.model_market, open_store(str(tmp_path / "empty")), 1)


def test_evaluator_verifies_a_model(model_home: tuple[Path, dict[str, Path]], capsys: object) -> None:
    from databright.cli import main

    home = model_home[0]

    def run(*args: str) -> int:
        try:
            main(["--home", str(home), *args])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert run("--account", "dev1", "model", "verify", "1") == 1  # not the evaluator
    assert run("--account", "dev2", "model", "verify", "1", "--json") == 0
    assert run("--account", "dev2", "model", "verify", "1") == 1  # once per version
    ws = Workspace(home)
    try:
        check = ws.model_market.verification(1, 1)
        report = json.loads(ws.store.get(str(cid_from_digest(check.report_digest))))
        assert report["training_reproduced"] is True
        assert check.score == round(report["score"] * 1_000_000) == ws.model_market.version(1, 1).claimed_score
    finally:
        ws.close()
