"""Training a model to register, reproducibly, from a dataset's accepted items.

The model is trained from scratch on every accepted item (in entry order)
with the dataset's spec for ``spec.pretrain_steps`` steps under one seed, on
one thread (:func:`databright.ml.train` is bit-identical across runs in one
environment), and scored on the dataset's validation split. The report holds
every input's CID, the seed, steps, score and library versions, so anyone can
re-run it (:func:`verify_training`) and get the same checkpoint digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import InputError
from databright.ml import ModelSpec, accuracy, encode_items, encode_labels, environment, save_checkpoint, train
from databright.storage import BlobStore, Manifest, canonical_json, load_report

__all__ = ["TrainedModel", "load_training_report", "score_checkpoint", "train_model", "verify_training"]

REPORT_KIND = "databright.training"


@dataclass(frozen=True)
class TrainedModel:
    dataset_id: int
    spec_cid: str
    checkpoint_cid: str
    report_cid: str
    score: float
    items: int

    @property
    def score_ppm(self) -> int:
        return round(self.score * 1_000_000)


def _load(store: BlobStore, spec: ModelSpec, manifests: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    blobs: list[bytes] = []
    labels: list[str] = []
    for cid in manifests:
        for item in Manifest.from_bytes(store.get(cid)):
            blobs.append(store.get(item.cid))
            labels.append(item.label)
    return encode_items(spec, blobs), encode_labels(spec, labels)


def _fit(store: BlobStore, spec: ModelSpec, accepted: Sequence[str], validation: str, seed: int,
         steps: int) -> tuple[bytes, float, int]:
    x, y = _load(store, spec, accepted)
    if len(x) == 0:
        raise InputError("the dataset has no accepted items to train on")
    vx, vy = _load(store, spec, [validation])
    state = train(spec, None, x, y, steps=steps, seed=seed)
    return save_checkpoint(state), accuracy(spec, state, vx, vy), len(x)


def train_model(store: BlobStore, dataset_id: int, spec: ModelSpec, accepted: Sequence[str], validation: str,
                *, seed: int = 0, steps: int | None = None) -> TrainedModel:
    """Train on the accepted manifests, score on ``validation``; spec, checkpoint and report go to ``store``."""
    steps = spec.pretrain_steps if steps is None else steps
    checkpoint, score, items = _fit(store, spec, accepted, validation, seed, steps)
    spec_cid = str(store.put(spec.to_json().encode()))
    checkpoint_cid = str(store.put(checkpoint))
    report: dict[str, Any] = {
        "kind": REPORT_KIND,
        "version": 1,
        "dataset_id": dataset_id,
        "spec": spec_cid,
        "accepted": list(accepted),
        "validation": validation,
        "seed": seed,
        "steps": steps,
        "items": items,
        "checkpoint": checkpoint_cid,
        "checkpoint_sha256": hashlib.sha256(checkpoint).hexdigest(),
        "score": score,
        "environment": environment(),
    }
    report_cid = str(store.put(canonical_json(report)))
    return TrainedModel(dataset_id, spec_cid, checkpoint_cid, report_cid, score, items)


def load_training_report(store: BlobStore, report_cid: str) -> dict[str, Any]:
    """The training report at ``report_cid`` ('databright train' writes them)."""
    return load_report(store, report_cid, "a training report", lambda r: r.get("kind") == REPORT_KIND)


def verify_training(store: BlobStore, report_cid: str) -> bool:
    """Re-run a training report; True when checkpoint and score come out bitwise identical."""
    report = load_training_report(store, report_cid)
    spec = ModelSpec.from_json(store.get(report["spec"]))
    checkpoint, score, _ = _fit(store, spec, report["accepted"], report["validation"], int(report["seed"]),
                                int(report["steps"]))
    return bool(hashlib.sha256(checkpoint).hexdigest() == report["checkpoint_sha256"] and score == report["score"])


def score_checkpoint(store: BlobStore, spec: ModelSpec, state: dict[str, Any], validation: str) -> float:
    """Validation accuracy of a checkpoint: what a dataset's evaluator posts as the verified score."""
    vx, vy = _load(store, spec, [validation])
    return accuracy(spec, state, vx, vy)
