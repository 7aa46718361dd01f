"""Training a model to register is reproducible, and its report re-runs bitwise."""

from __future__ import annotations

import json
from pathlib import Path

from databright.chain import ModelMarket
from databright.ml import ModelSpec
from databright.models import ServedModel, train_model, verify_training
from databright.storage import cid_from_digest, digest_of_cid
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


def test_evaluator_service_verifies_newly_registered_models(model_home: tuple[Path, dict[str, Path]]) -> None:
    from databright.evaluator import Evaluator
    from databright.index import get_model, model_versions

    ws = Workspace(model_home[0])
    try:
        mm = ws.model_market
        honest = mm.version(2, 1)
        # A checkpoint trained with another seed, registered with model 1's training report: it was
        # not trained as its report says. And model 2's image checkpoint on the table dataset.
        report = json.loads(ws.store.get(str(cid_from_digest(mm.version(1, 1).report_digest))))
        spec = ModelSpec.from_json(ws.store.get(report["spec"]))
        other = train_model(ws.store, 1, spec, report["accepted"], report["validation"], seed=1, steps=report["steps"])
        bogus = mm.register(ws.signer("dev1"), 1, digest_of_cid(other.spec_cid), digest_of_cid(other.checkpoint_cid),
                            mm.version(1, 1).report_digest, 990_000, 10**12, 1000)
        foreign = mm.register(ws.signer("dev1"), 1, honest.spec_digest, honest.checkpoint_digest,
                              honest.report_digest, 990_000, 10**12, 1000)
        lines: list[str] = []
        evaluator = Evaluator(ws, ws.signer("dev2"))
        ws.sync()
        assert {(2, 1), (bogus, 1), (foreign, 1)} <= set(evaluator.pending_models())
        assert evaluator.run(once=True, report=lines.append) >= 3
        assert evaluator.pending_models() == []  # the chain is its ledger: nothing verified twice
        assert evaluator.verify_models() == 0
        [v2] = model_versions(ws.index, 2)
        assert v2.verified_score == mm.verification(2, 1).score == honest.claimed_score
        assert v2.verifier == ws.address_of("dev2") and v2.verification_cid
        [v3] = model_versions(ws.index, bogus)
        assert v3.verified_score == 0 and get_model(ws.index, bogus).dataset_id == 1
        report = json.loads(ws.store.get(str(v3.verification_cid)))
        assert report["score"] > 0 and report["score_ppm"] == 0
        assert any("not the registered" in p for p in report["problems"])
        assert any(f"model {bogus} version 1: verified 0.00% (" in line and "not the registered" in line
                   for line in lines)
        [v4] = model_versions(ws.index, foreign)
        assert v4.verified_score == 0
        problems = json.loads(ws.store.get(str(v4.verification_cid)))["problems"]
        assert any("is for dataset 2, not 1" in p for p in problems)
        assert any("cannot be scored on the dataset's validation split" in p for p in problems)
    finally:
        ws.close()
