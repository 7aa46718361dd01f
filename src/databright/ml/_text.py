"""Text as fixed-size vectors: hashed word and character n-grams.

The feature hashing of Weinberger et al. (ICML 2009, "Feature Hashing for Large
Scale Multitask Learning"): every word unigram and bigram and every character
trigram of a text is hashed into one of ``dim`` buckets with a sign taken from
the same hash, so collisions cancel in expectation instead of piling up. The
counts are damped (``sign(v) log(1 + |v|)``) and the vector scaled to unit
length, so long and short texts are comparable and Euclidean distances (which
the near-duplicate and KNN-Shapley signals use) are chord distances between
directions.

Deterministic by construction: the hash is CRC-32 of the n-gram's UTF-8 bytes
with a prefix naming its kind (never Python's salted ``hash``), text is
case-folded and its whitespace collapsed, and sums are taken in float64 before
the result is rounded once to float32. The only dependency is the Unicode
version of Python's ``str.casefold``. A pair's source and target are hashed
with different prefixes, so the same words on either side are different
features.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from databright.errors import InputError
from databright.storage import ManifestError, decode_text

__all__ = ["encode_texts", "text_features"]

_SIGN_BIT = 1 << 31


def _grams(text: str, side: str) -> list[bytes]:
    words = text.casefold().split()
    joined = " " + " ".join(words) + " "
    grams = [f"{side}w {w}" for w in words]
    grams += [f"{side}b {a} {b}" for a, b in zip(words, words[1:], strict=False)]
    grams += [f"{side}c {joined[i:i + 3]}" for i in range(len(joined) - 2)]
    return [g.encode("utf-8") for g in grams]


def text_features(source: str, target: str | None, dim: int) -> NDArray[np.float64]:
    """The float64 feature vector of one text (or pair), before rounding to float32."""
    counts = np.zeros(dim, dtype=np.float64)
    mask = dim - 1  # dim is a power of two: the low bits pick the bucket, the top bit the sign
    grams = _grams(source, "s") + (_grams(target, "t") if target is not None else [])
    for gram in grams:
        h = zlib.crc32(gram)
        counts[h & mask] += -1.0 if h & _SIGN_BIT else 1.0
    damped = np.sign(counts) * np.log1p(np.abs(counts))
    norm = float(np.sqrt(np.dot(damped, damped)))
    return damped / norm if norm > 0.0 else damped


def encode_texts(blobs: Sequence[bytes], dim: int) -> NDArray[np.float32]:
    """Encode text items (see ``storage._text``) as a ``(len(blobs), dim)`` float32 array."""
    out = np.empty((len(blobs), dim), dtype=np.float32)
    for i, blob in enumerate(blobs):
        try:
            source, target = decode_text(blob, f"item {i}")
        except ManifestError as exc:
            raise InputError(str(exc)) from None
        out[i] = text_features(source, target, dim)
    return out
