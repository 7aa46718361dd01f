"""A tiny PNG writer for tests: 8/16-bit grey, RGB and RGBA, any filter per row."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
        out[i] = (x - predictor) & 0xFF
    return bytes([kind]) + bytes(out)


def encode_png(
    pixels: NDArray[np.integer], filters: Sequence[int] = (0,), bit_depth: int = 8
) -> bytes:
    """PNG bytes of ``pixels`` ((h, w) or (h, w, channels)); row r uses ``filters[r % len]``."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    dtype = ">u2" if bit_depth == 16 else "u1"
    bpp = channels * (2 if bit_depth == 16 else 1)
    raw = bytearray()
    prior = bytes(width * bpp)
    for r in range(height):
        row = array[r].astype(dtype).tobytes()
        raw += _filter(filters[r % len(filters)], row, prior, bpp)
        prior = row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOUR_TYPES[channels], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )
