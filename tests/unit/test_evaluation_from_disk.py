"""A whole evaluation on the large-dataset path, at reduced size: encodings on
disk, training a minibatch at a time, the approximate neighbour index, all
caches — the same results as an evaluation that recomputes everything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from databright import evaluator
from databright.ml import ModelSpec, save_checkpoint, train
from databright.storage import LocalBlobStore, Manifest, ManifestItem
from databright.valuation import RewardPolicy, SignalCache
from databright.valuation import _index, _signals
from tests.unit.ml._png import encode_png


def _manifest(store: LocalBlobStore, rng: np.random.Generator, n: int, base: np.ndarray) -> str:
    items = []
    for i in range(n):
        label = int(rng.integers(0, 2))
        pixels = np.clip(base[label] + rng.normal(0, 40, (8, 8)), 0, 255).astype(np.uint8)
        items.append(ManifestItem(store.put(encode_png(pixels)), "ab"[label]))
    return Manifest(items).save(store)


def test_cached_evaluation_from_disk_equals_a_fresh_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_signals, "APPROXIMATE_ABOVE", 100)  # the index and the truncated KNN-Shapley
    monkeypatch.setattr(_signals, "EXACT_KNN_ELEMENTS", 0)
    monkeypatch.setattr(_signals, "KNN_CANDIDATES", 48)
    for name, value in {"DIMENSIONS": 8, "CELLS": 16, "FIT_ROWS": 100, "PROBE": 4, "RERANK": 20}.items():
        monkeypatch.setattr(_index, name, value)
    store = LocalBlobStore(tmp_path / "blobs")
    rng = np.random.default_rng(0)
    base = rng.integers(40, 215, (2, 8, 8)).astype(np.float64)
    accepted = [_manifest(store, rng, n, base) for n in (80, 70, 90)]
    spec = ModelSpec(kind="mlp", input="image", image_shape=(1, 8, 8), classes=("a", "b"), hidden=(8,),
                     batch_size=16, pretrain_steps=30, finetune_steps=20, seeds=2)
    items = evaluator._Items(store, tmp_path / "encodings")
    _, (x, y) = items.join(spec, accepted)
    checkpoint = store.put(save_checkpoint(train(spec, None, x, y, steps=30, seed=0)))
    inputs = {
        "spec": spec.model_dump(mode="json"), "policy": RewardPolicy().model_dump(mode="json"), "cap": 10**6,
        "base_reward": 100, "accepted": accepted, "proposal": _manifest(store, rng, 12, base),
        "validation": _manifest(store, rng, 40, base), "checkpoint": str(checkpoint), "seeds": [0, 1],
    }
    assert isinstance(x, evaluator.Stack) and all(isinstance(b, evaluator.DiskRows) for b in x.blocks)
    baselines: dict[tuple[object, ...], float] = {}
    first = evaluator.compute_results(store, inputs, items, baselines, SignalCache(tmp_path / "signals"))
    assert first["signals"]["knn_error_bound"] == 1 / 48
    assert (tmp_path / "signals" / "index").is_dir()  # the index was built and kept
    again = evaluator.compute_results(store, inputs, evaluator._Items(store, tmp_path / "encodings"), baselines,
                                      SignalCache(tmp_path / "signals"))
    fresh = evaluator.compute_results(store, inputs)  # as `evaluate --verify` does: nothing cached, nothing on disk
    assert again == first
    assert fresh == first
