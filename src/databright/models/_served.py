"""A registered model loaded for serving: spec and checkpoint fetched by the
digests its registration committed on-chain, and checked against them.

The checkpoint is safetensors (never a pickle): whoever serves a model cannot
be made to run code by its file, and the digest check means the weights that
answer are exactly the ones the owner registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.chain.modelmarket import ModelMarket
from databright.errors import DataBrightError, InputError
from databright.ml import ModelSpec, encode_items, load_checkpoint, predict_proba
from databright.storage import BlobStore, cid_from_digest

__all__ = ["Prediction", "ServedModel"]


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class ServedModel:
    model_id: int
    version: int
    dataset_id: int
    spec: ModelSpec
    state: dict[str, Any]
    checkpoint_cid: str

    @classmethod
    def load(cls, market: ModelMarket, store: BlobStore, model_id: int, version: int | None = None) -> ServedModel:
        model = market.model(model_id)
        number = model.version_count if version is None else version
        registered = market.version(model_id, number)
        try:
            spec_blob = store.get(str(cid_from_digest(registered.spec_digest)))
            checkpoint_cid = str(cid_from_digest(registered.checkpoint_digest))
            checkpoint = store.get(checkpoint_cid)
        except DataBrightError as exc:
            raise InputError(f"model {model_id} version {number}: {exc}") from exc
        if hashlib.sha256(checkpoint).digest() != registered.checkpoint_digest:
            raise InputError(f"model {model_id}: checkpoint does not match its registered digest")
        spec = ModelSpec.from_json(spec_blob)
        return cls(model_id, number, model.dataset_id, spec, load_checkpoint(checkpoint), checkpoint_cid)

    def encode(self, items: Sequence[bytes]) -> NDArray[np.float32]:
        """Items as stored in a dataset (image file bytes or JSON table rows) as model input;
        anything the spec cannot read raises InputError before any payment is taken."""
        if not items:
            raise InputError("nothing to predict: send at least one image or row")
        return encode_items(self.spec, items)

    def predict(self, x: NDArray[np.float32]) -> list[Prediction]:
        return self.predictions(predict_proba(self.spec, self.state, x))

    def predictions(self, proba: NDArray[np.float32]) -> list[Prediction]:
        """Class probabilities (one row per item, columns in class order) as predictions."""
        classes = self.spec.classes
        out = []
        for row in proba:
            best = int(np.argmax(row))
            out.append(Prediction(classes[best], float(row[best]),
                                  {c: round(float(p), 6) for c, p in zip(classes, row, strict=True)}))
        return out
