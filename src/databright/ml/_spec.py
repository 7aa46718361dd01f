"""Model specs: everything needed to rebuild, train and evaluate a model, as data.

A :class:`ModelSpec` travels between the evaluator, coordinators and workers (and
is stored as a blob whose CID a model registration names), so it is plain JSON:
no code, no pickles. It fixes the architecture (``kind``, ``hidden``), how items
become tensors (``input``, ``features``, ``image_shape`` or ``text_dim``, ``normalize``), the
label order (``classes``) and every training hyperparameter, so that two parties
holding the same spec, data and seed train bit-identical models.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from databright.errors import InputError
from databright.storage import canonical_json

__all__ = ["ModelSpec", "Normalization"]


class Normalization(BaseModel):
    """Affine normalisation ``(value - mean) / std`` applied after encoding.

    For tables there is one entry per feature (in ``ModelSpec.features`` order);
    for images one per channel, applied to pixel values already scaled to [0, 1].
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(self.mean) != len(self.std):
            raise ValueError(f"normalize has {len(self.mean)} means but {len(self.std)} stds")
        if any(not s > 0.0 for s in self.std):
            raise ValueError("normalize std values must be positive")
        return self


class ModelSpec(BaseModel):
    """A classifier's architecture, input encoding and training recipe.

    ``hidden`` holds the hidden layer widths of an MLP, or the channel counts of
    the two convolution layers of a CNN. ``batch_size`` 0 means full batch.
    ``pretrain_steps`` is used when training from scratch, ``finetune_steps``
    when training from a checkpoint; ``seeds`` is how many seeds an evaluation
    averages over. Without ``normalize``, table values are used as they are and
    pixels are scaled to [0, 1]. Text is hashed into ``text_dim`` features
    (``ml._text``), already scaled to unit length, so it takes no ``normalize``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    kind: Literal["mlp", "cnn"]
    input: Literal["table", "image", "text"]
    features: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] | None = None
    text_dim: int = 0
    classes: tuple[str, ...]
    hidden: tuple[int, ...] = (64,)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 0
    pretrain_steps: int = 200
    finetune_steps: int = 50
    seeds: int = 3
    normalize: Normalization | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.classes:
            raise ValueError("a spec needs at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if self.input != "text" and self.text_dim:
            raise ValueError("only a text spec has text_dim")
        if self.input == "text":
            if self.text_dim < 16 or self.text_dim > 1 << 20 or self.text_dim & (self.text_dim - 1):
                raise ValueError("text_dim must be a power of two from 16 to 1048576")
            if self.features or self.image_shape is not None or self.kind != "mlp" or self.normalize is not None:
                raise ValueError("a text spec is an mlp with text_dim only (no features, image_shape, normalize)")
            width = self.text_dim
        elif self.input == "table":
            if not self.features:
                raise ValueError("a table spec needs at least one feature")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features must be unique")
            if self.image_shape is not None:
                raise ValueError("a table spec has no image_shape")
            if self.kind == "cnn":
                raise ValueError("a cnn needs image input")
            width = len(self.features)
        else:
            if self.image_shape is None:
                raise ValueError("an image spec needs image_shape (channels, height, width)")
            if self.features:
                raise ValueError("an image spec has no features")
            channels, height, width_px = self.image_shape
            if channels not in (1, 3):
                raise ValueError("images have 1 (grey) or 3 (RGB) channels")
            if height < 1 or width_px < 1:
                raise ValueError("image height and width must be positive")
            if self.kind == "cnn" and (height < 4 or width_px < 4):
                raise ValueError("a cnn needs images of at least 4x4 pixels")
            width = channels
        if self.kind == "cnn" and len(self.hidden) != 2:
            raise ValueError("a cnn's hidden holds the channels of its two conv layers")
        if any(h < 1 for h in self.hidden):
            raise ValueError("hidden sizes must be positive")
        if self.normalize is not None and len(self.normalize.mean) != width:
            raise ValueError(
                f"normalize has {len(self.normalize.mean)} entries, expected {width} "
                f"(one per {'feature' if self.input == 'table' else 'channel'})"
            )
        if not self.lr > 0.0 or self.weight_decay < 0.0:
            raise ValueError("lr must be positive and weight_decay non-negative")
        if self.batch_size < 0 or self.pretrain_steps < 0 or self.finetune_steps < 0:
            raise ValueError("batch_size and step counts must be non-negative")
        if self.seeds < 1:
            raise ValueError("seeds must be at least 1")
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one encoded item: ``(features,)``, ``(channels, height, width)`` or ``(text_dim,)``."""
        if self.image_shape is not None:
            return self.image_shape
        if self.input == "text":
            return (self.text_dim,)
        return (len(self.features),)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, compact), so equal specs give equal bytes."""
        data = self.model_dump(mode="json")
        if self.input != "text":
            del data["text_dim"]  # specs from before text existed keep their bytes, so their digests
        return canonical_json(data).decode("utf-8")

    @classmethod
    def from_json(cls, data: str | bytes) -> ModelSpec:
        """Parse a spec; anything malformed raises :class:`InputError`."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(
                f"invalid model spec: {where + ': ' if where else ''}{first['msg']}"
            ) from exc
