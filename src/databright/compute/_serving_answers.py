"""Prediction requests and answers as bytes: what owner, coordinator and workers exchange.

Items travel framed (each an 8-byte big-endian length, then its bytes: image
file bytes or a JSON row, exactly as a dataset stores them), so a request's
digest is the digest of those bytes. An answer is canonical JSON: the request
id, the input digest, the predicted labels and the class probabilities as
little-endian float32 (base64). Inference in the pinned environment on one
thread is bit-identical, so honest answers to one request are equal byte for
byte and are compared by :func:`answer_digest`. Nothing is unpickled: an answer
is parsed, checked against the model's classes and the labels re-derived from
the probabilities.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic_core
from numpy.typing import NDArray

from databright.errors import InputError
from databright.ml import ModelSpec, encode_items, predict_proba
from databright.storage import canonical_json

__all__ = ["Answer", "frame_items", "infer", "unframe_items"]

#: Most items one prediction request may carry.
MAX_ITEMS = 256


def frame_items(items: Sequence[bytes]) -> bytes:
    return b"".join(len(item).to_bytes(8, "big") + item for item in items)


def unframe_items(data: bytes) -> list[bytes]:
    items, at = [], 0
    while at < len(data):
        if at + 8 > len(data):
            raise InputError("truncated item frame")
        size = int.from_bytes(data[at:at + 8], "big")
        if at + 8 + size > len(data):
            raise InputError("truncated item frame")
        items.append(data[at + 8:at + 8 + size])
        at += 8 + size
    if not items or len(items) > MAX_ITEMS:
        raise InputError(f"a prediction request carries 1 to {MAX_ITEMS} items, got {len(items)}")
    return items


@dataclass(frozen=True)
class Answer:
    """One answer to one request: labels and float32 probabilities, one row per item."""

    request: int
    input_sha256: str
    labels: tuple[str, ...]
    probabilities: NDArray[np.float32]

    def to_json(self) -> bytes:
        raw = np.ascontiguousarray(self.probabilities, dtype="<f4").tobytes()
        return canonical_json({"request": self.request, "input_sha256": self.input_sha256,
                               "labels": list(self.labels), "probabilities": base64.b64encode(raw).decode()})

    @property
    def digest(self) -> str:
        """What two answers to one request are compared by: labels and probability bytes."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def parse(cls, body: bytes, classes: Sequence[str], items: int) -> Answer:
        """An answer to a request of ``items`` items; anything malformed raises :class:`InputError`."""
        try:
            raw: Any = pydantic_core.from_json(body, allow_inf_nan=False)  # nesting-bounded
            if not isinstance(raw, dict) or set(raw) != {"request", "input_sha256", "labels", "probabilities"}:
                raise ValueError("expected exactly request, input_sha256, labels and probabilities")
            request, digest, labels = raw["request"], raw["input_sha256"], raw["labels"]
            if not isinstance(request, int) or not isinstance(digest, str) or not isinstance(labels, list):
                raise ValueError("request is an integer, input_sha256 a string, labels a list")
            if not all(isinstance(label, str) for label in labels):
                raise ValueError("labels are strings")
            data = base64.b64decode(str(raw["probabilities"]), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise InputError(f"malformed answer: {exc}") from None
        width = len(classes)
        if len(labels) != items or len(data) != items * width * 4:
            raise InputError(f"malformed answer: {items} items of {width} classes expected")
        proba = np.frombuffer(data, dtype="<f4").reshape(items, width).astype(np.float32)
        if not np.all(np.isfinite(proba)) or np.any(proba < 0) or np.any(proba > 1):
            raise InputError("malformed answer: probabilities outside [0, 1]")
        if any(label != classes[int(np.argmax(row))] for label, row in zip(labels, proba, strict=True)):
            raise InputError("malformed answer: a label is not its row's most probable class")
        return cls(request, digest, tuple(labels), proba)


def infer(spec: ModelSpec, state: dict[str, Any], items: Sequence[bytes], request: int, input_sha256: str) -> Answer:
    """The model's own answer (single-threaded, as everywhere a digest is compared)."""
    proba = predict_proba(spec, state, encode_items(spec, items))
    labels = tuple(spec.classes[int(np.argmax(row))] for row in proba)
    return Answer(request, input_sha256, labels, proba)
