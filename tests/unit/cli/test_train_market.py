"""A compute job's result is used only when its checkpoint matches the digest complete_job recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from databright.cli._compute_local import worker_keys
from databright.cli._train_market import _checked_result
from databright.errors import ComputeError
from databright.storage import LocalBlobStore, canonical_json


def _job(store: LocalBlobStore, checkpoint: bytes, recorded: bytes, score: float | None = 0.9) -> SimpleNamespace:
    cid = str(store.put(checkpoint))
    report = {"kind": "databright.compute.job", "job_id": 4, "dataset_id": 2, "checkpoint": cid, "score": score}
    return SimpleNamespace(report_cid=str(store.put(canonical_json(report))), checkpoint_digest=recorded)


def test_the_checkpoint_must_match_the_digest_on_chain(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    ws = SimpleNamespace(store=store)
    good = _job(store, b"weights", hashlib.sha256(b"weights").digest())
    assert _checked_result(ws, good, 4, 2)["score"] == 0.9
    forged = _job(store, b"other weights", hashlib.sha256(b"weights").digest())
    with pytest.raises(ComputeError, match="does not match the digest job 4 recorded"):
        _checked_result(ws, forged, 4, 2)
    with pytest.raises(ComputeError, match="is not the report of job 5"):
        _checked_result(ws, good, 5, 2)
    unscored = _job(store, b"weights", hashlib.sha256(b"weights").digest(), score=None)
    with pytest.raises(ComputeError, match="no validation score"):
        _checked_result(ws, unscored, 4, 2)


def test_logical_worker_keys_are_recomputable_and_distinct() -> None:
    keys = worker_keys(b"\x01" * 32, 5)
    assert keys == worker_keys(b"\x01" * 32, 5) and len(set(keys)) == 5
    assert worker_keys(b"\x02" * 32, 1)[0] not in keys


def test_a_split_job_reports_its_cut_and_who_held_each_piece() -> None:
    from databright.cli.train import split_lines

    split = {"pieces": [{"stage": 0, "first_layer": 0, "layers": ["flatten", "linear", "relu"], "params": 18},
                        {"stage": 1, "first_layer": 3, "layers": ["linear"], "params": 14}],
             "pipelines": [{"round": 0, "task": 1, "pipeline": 3, "status": "submitted", "failure": None,
                            "stages": [{"stage": 0, "worker": "0xA"}, {"stage": 1, "worker": "0xB"}]},
                           {"round": 1, "task": 0, "pipeline": 4, "status": "failed", "failure": "frame too big",
                            "stages": [{"stage": 0, "worker": "0xC"}, {"stage": 1, "worker": "0xD"}]}]}
    assert split_lines(split) == [
        "model cut into 2 pieces: piece 0 = layers 0-2 (flatten, linear, relu), 18 parameters; "
        "piece 1 = layer 3 (linear), 14 parameters",
        "round 1 task 1 (accepted): piece 0 on 0xA, piece 1 on 0xB",
        "round 2 task 0 (failed): piece 0 on 0xC, piece 1 on 0xD - frame too big",
    ]


def test_split_beyond_the_models_cuts_is_a_usage_error() -> None:
    import typer

    from databright.cli.train import split_settings
    from databright.ml import ModelSpec

    spec = ModelSpec(kind="mlp", input="table", features=("a", "b"), classes=("neg", "pos"), hidden=(4,))
    assert split_settings(spec, 1, 3) is None
    assert split_settings(spec, 2, 3).verification == "tmr" and split_settings(spec, 2, 1).verification == "none"
    for bad in (3, 0):
        with pytest.raises(typer.BadParameter, match="piece"):
            split_settings(spec, bad, 1)
