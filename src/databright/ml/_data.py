"""Turning dataset items into tensors, and choosing a spec from a sample of them.

A "table" dataset stores each row's feature columns as canonical JSON
(``{"a":1.0,"b":2}``); a "files" dataset stores each file as it is, and the
files this module trains on are images (PNG, JPEG, GIF, BMP, WebP, … — whatever
Pillow identifies). Items come from contributors, so every item is treated as
hostile: undecodable bytes, non-numeric cells and oversized images raise
:class:`~databright.errors.InputError` naming the item, and nothing is unpickled.

Encoding is deterministic: missing or null cells become 0.0 before
normalisation; images become grey (ITU-R 601-2 luma, Pillow's integer
conversion) or RGB as the spec says, alpha is dropped, and they are resized to
the spec's shape with Pillow's box filter applied to each channel as a 32-bit
float image (mode ``F``), so no precision is lost to 8-bit rounding and the
result depends only on Pillow's version. A JPEG four or more times larger than
the target is decoded at a reduced DCT scale first (``Image.draft``): libjpeg
then skips most of the work, still deterministically. Everything is float32.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from databright.errors import InputError
from databright.ml._spec import ModelSpec, Normalization
from databright.ml._text import encode_texts

__all__ = ["default_spec", "encode_items", "encode_labels"]

#: Images with more pixels than this are refused before they are decoded.
MAX_IMAGE_PIXELS = 1 << 24
#: Largest side :func:`default_spec` keeps; larger images are scaled down to it.
MAX_DEFAULT_SIDE = 64
#: Images up to this many pixels (per channel) get an MLP, larger ones a CNN.
MLP_MAX_PIXELS = 16 * 16
#: Hashed n-gram features of the default text spec: few enough for exact KNN-Shapley
#: up to 8,192 items, enough that a sentence's n-grams rarely collide.
TEXT_DIM = 2048

_HIGH_DEPTH_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def encode_items(spec: ModelSpec, blobs: Sequence[bytes]) -> NDArray[np.float32]:
    """Encode items as a float32 array of shape ``(len(blobs), *spec.input_shape)``."""
    if spec.input == "text":
        return encode_texts(blobs, spec.text_dim)
    if spec.input == "table":
        raw = _table_matrix([_parse_row(blob, i) for i, blob in enumerate(blobs)], spec.features)
        out = raw
        if spec.normalize is not None:
            out = (raw - np.asarray(spec.normalize.mean)) / np.asarray(spec.normalize.std)
    else:
        assert spec.image_shape is not None
        channels, height, width = spec.image_shape
        out = np.empty((len(blobs), channels, height, width), dtype=np.float32)
        for i, blob in enumerate(blobs):
            out[i] = _resize(_decode_image(blob, i, channels, (width, height)), height, width)
        if spec.normalize is not None:
            mean = np.asarray(spec.normalize.mean, dtype=np.float32).reshape(1, channels, 1, 1)
            std = np.asarray(spec.normalize.std, dtype=np.float32).reshape(1, channels, 1, 1)
            out -= mean
            out /= std
    return np.ascontiguousarray(out, dtype=np.float32)


def encode_labels(spec: ModelSpec, labels: Sequence[str]) -> NDArray[np.int64]:
    """Map label strings to class indices in ``spec.classes`` order."""
    index = {label: i for i, label in enumerate(spec.classes)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        try:
            out[i] = index[label]
        except (KeyError, TypeError):
            raise InputError(
                f"label {label!r} of item {i} is not one of the spec's classes "
                f"({', '.join(spec.classes)})"
            ) from None
    return out


def default_spec(kind: str, sample_items: Sequence[bytes], labels: Sequence[str]) -> ModelSpec:
    """Choose a model for a dataset of ``kind`` ("table", "files" or "text") from a sample.

    Tables get an MLP over the columns whose values in the sample are all
    numbers (or null), in sorted column order. Images get an MLP when they are
    small (at most 16x16 pixels, like 8x8 digits) and a CNN with two conv layers
    otherwise; the shape is the sample's most common one (scaled down to at most
    64 pixels a side), grey unless some sample image has colour. Classes are the
    sample's labels, sorted; normalisation is the sample's per-feature (or
    per-channel) mean and standard deviation. Text gets an MLP over
    :data:`TEXT_DIM` hashed n-gram features (``ml._text``), unnormalised: they
    are unit vectors already.
    """
    if len(sample_items) != len(labels):
        raise InputError(f"{len(sample_items)} sample items but {len(labels)} labels")
    if not sample_items:
        raise InputError("default_spec needs at least one sample item")
    if any(not isinstance(label, str) for label in labels):
        raise InputError("labels must be strings")
    classes = tuple(sorted(set(labels)))
    if kind == "text":
        encode_texts(sample_items, 16)  # refuses what is not text, naming the item
        return ModelSpec(kind="mlp", input="text", text_dim=TEXT_DIM, classes=classes, **_MLP_RECIPE)
    if kind == "table":
        rows = [_parse_row(blob, i) for i, blob in enumerate(sample_items)]
        features = _numeric_columns(rows)
        layout: dict[str, Any] = {"kind": "mlp", "input": "table", "features": features, **_MLP_RECIPE}
        raw = _table_matrix(rows, features)
        mean, std = raw.mean(axis=0), raw.std(axis=0)
    elif kind == "files":
        arrays = [_decode_image(blob, i, 3) for i, blob in enumerate(sample_items)]
        colour = not all(_is_grey(a) for a in arrays)
        channels = 3 if colour else 1
        height, width = _default_size(Counter(a.shape[1:] for a in arrays))
        small = height * width <= MLP_MAX_PIXELS
        layout = {
            "kind": "mlp" if small else "cnn",
            "input": "image",
            "image_shape": (channels, height, width),
            **(_MLP_RECIPE if small else _CNN_RECIPE),
        }
        encoded = np.stack([_resize(a if colour else a[:1], height, width) for a in arrays])
        mean = encoded.mean(axis=(0, 2, 3), dtype=np.float64)
        std = encoded.std(axis=(0, 2, 3), dtype=np.float64)
    else:
        raise InputError(f"unknown dataset kind {kind!r} (expected 'table', 'files' or 'text')")
    # A constant column carries no information; dividing by 1 keeps it finite.
    std = np.where(std > 1e-8, std, 1.0)
    normalize = Normalization(mean=tuple(map(float, mean)), std=tuple(map(float, std)))
    return ModelSpec(**layout, classes=classes, normalize=normalize)


# Minibatches make the seeds matter, so an evaluation's spread over seeds says
# how much of a measured gain is noise; five seeds keep that spread honest.
_MLP_RECIPE: dict[str, Any] = {
    "batch_size": 64,
    "pretrain_steps": 300,
    "finetune_steps": 100,
    "seeds": 5,
}

_CNN_RECIPE: dict[str, Any] = {
    "hidden": (8, 16),
    "lr": 3e-3,
    "batch_size": 64,
    "pretrain_steps": 300,
    "finetune_steps": 100,
}


# -- tables -----------------------------------------------------------------


def _parse_row(blob: bytes, index: int) -> dict[str, Any]:
    try:
        row = json.loads(blob)
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"item {index} is not a JSON table row") from None
    if not isinstance(row, dict):
        raise InputError(f"item {index} is not a JSON object of feature columns")
    return row


def _is_number(value: object) -> bool:
    return value is None or (
        isinstance(value, int | float) and math.isfinite(value)  # bool is an int: 0/1
    )


def _table_matrix(rows: Sequence[dict[str, Any]], features: Sequence[str]) -> NDArray[np.float64]:
    out = np.zeros((len(rows), len(features)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, feature in enumerate(features):
            value = row.get(feature)
            if not _is_number(value):
                raise InputError(
                    f"item {i}: feature {feature!r} is not a finite number ({value!r})"
                )
            if value is not None:
                out[i, j] = float(value)
    return out


def _numeric_columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    columns = sorted({key for row in rows for key in row})
    numeric = tuple(c for c in columns if all(_is_number(row.get(c)) for row in rows))
    if not numeric:
        raise InputError("the sample rows have no numeric feature columns")
    return numeric


# -- images -----------------------------------------------------------------


def _decode_image(
    blob: bytes, index: int, channels: int, target: tuple[int, int] | None = None
) -> NDArray[np.float32]:
    """Decode an item to a ``(channels, height, width)`` float32 array in [0, 1].

    With a ``target`` (width, height), a JPEG at least four times as large on
    both sides is decoded at the smallest DCT scale that keeps it at least
    ``2 x target``, so the box filter still averages several pixels per output.
    """
    try:
        image = Image.open(io.BytesIO(blob))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise InputError(
                f"item {index} is a {width}x{height} image, larger than "
                f"{MAX_IMAGE_PIXELS} pixels"
            )
        if target is not None and image.format == "JPEG" and _exif_orientation(image) == 1:
            wanted = (2 * target[0], 2 * target[1])
            if width >= 2 * wanted[0] and height >= 2 * wanted[1]:
                image.draft("RGB" if channels == 3 else "L", wanted)
        image.load()
        # Phone photos store their rotation in EXIF; apply it so pixels are upright.
        return _pixels(ImageOps.exif_transpose(image), channels)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(
            f"item {index} is an image larger than {MAX_IMAGE_PIXELS} pixels"
        ) from None
    except Exception as exc:
        # Items are hostile and Pillow's parsers fail in many ways (OSError,
        # ValueError, struct.error, ...); all of them mean "not a usable image".
        raise InputError(f"item {index} cannot be decoded as an image ({exc})") from None


def _exif_orientation(image: Image.Image) -> int:
    # A rotated JPEG keeps its own orientation after draft; only upright ones are drafted
    # so that the drafted and the full decode agree on which side is the width.
    return int(image.getexif().get(0x0112, 1))


def _pixels(image: Image.Image, channels: int) -> NDArray[np.float32]:
    """Pixels as a ``(channels, height, width)`` float32 array in [0, 1]."""
    if image.mode in _HIGH_DEPTH_GREY:
        # 16-bit grey (PNG) arrives as I or I;16; Pillow's L conversion would clip it.
        grey = np.asarray(image, dtype=np.float64) / 65535.0
        grey32 = np.clip(grey, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey32[None], channels, axis=0)
    if image.mode in ("P", "PA"):
        # Palette transparency must go through RGBA, or Pillow warns on conversion.
        image = image.convert("RGBA")
    if channels == 1:
        array = np.asarray(image.convert("L"), dtype=np.float32)[None]
    else:
        array = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    # float32 division is correctly rounded: the same values float64 would give, rounded.
    return array / np.float32(255.0)


def _is_grey(rgb: NDArray[np.float32]) -> bool:
    return bool(np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[1], rgb[2]))


def _resize(array: NDArray[np.float32], height: int, width: int) -> NDArray[np.float32]:
    """Resize each channel with Pillow's box filter, as a 32-bit float image."""
    if array.shape[1:] == (height, width):
        return array
    out = np.empty((array.shape[0], height, width), dtype=np.float32)
    for c, channel in enumerate(array):
        plane = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))  # mode F
        out[c] = np.asarray(plane.resize((width, height), Image.Resampling.BOX), dtype=np.float32)
    return out


def _default_size(sizes: Counter[tuple[int, ...]]) -> tuple[int, int]:
    # Most common size; ties go to the smaller image so the choice is deterministic.
    (height, width), _ = min(sizes.items(), key=lambda kv: (-kv[1], kv[0][0] * kv[0][1], kv[0]))
    scale = min(1.0, MAX_DEFAULT_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))
