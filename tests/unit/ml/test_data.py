from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from databright.errors import InputError
from databright.ml import ModelSpec, Normalization, encode_items, encode_labels
from tests.unit.ml._png import encode_png

TABLE = ModelSpec(kind="mlp", input="table", features=("b", "a"), classes=("x", "y"))


def _image_spec(channels: int, height: int, width: int) -> ModelSpec:
    return ModelSpec(
        kind="mlp", input="image", image_shape=(channels, height, width), classes=("x", "y")
    )


def test_table_rows_take_features_in_spec_order() -> None:
    x = encode_items(TABLE, [b'{"a":1.0,"b":2}', b'{"a":true,"c":"ignored"}', b'{"b":null}'])
    assert x.dtype == np.float32 and x.shape == (3, 2)
    np.testing.assert_array_equal(x, [[2.0, 1.0], [0.0, 1.0], [0.0, 0.0]])


def test_table_normalisation() -> None:
    spec = TABLE.model_copy(update={"normalize": Normalization(mean=(1.0, 2.0), std=(2.0, 4.0))})
    x = encode_items(spec, [b'{"a":6,"b":5}'])
    np.testing.assert_array_equal(x, [[2.0, 1.0]])


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b'{"a":"one","b":1}', "item 0: feature 'a' is not a finite number"),
        (b'{"a":[1],"b":1}', "feature 'a'"),
        (b'{"a":NaN,"b":1}', "feature 'a'"),
        (b"[1, 2]", "item 0 is not a JSON object"),
        (b"\xff\xfe", "item 0 is not a JSON table row"),
    ],
)
def test_bad_table_rows(blob: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        encode_items(TABLE, [blob])


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
def test_png_filter_types(filters: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (7, 9), dtype=np.uint8)
    x = encode_items(_image_spec(1, 7, 9), [encode_png(pixels, filters)])
    assert x.shape == (1, 1, 7, 9)
    np.testing.assert_array_equal(x[0, 0], (pixels / 255.0).astype(np.float32))


def test_png_colour_to_grey_and_rgb() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    blob = encode_png(rgb, (4, 2))
    kept = encode_items(_image_spec(3, 5, 6), [blob])
    np.testing.assert_array_equal(kept[0], (rgb.transpose(2, 0, 1) / 255.0).astype(np.float32))
    grey = encode_items(_image_spec(1, 5, 6), [blob])
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grey[0, 0], luma / 255.0, atol=1 / 255)
    rgba = np.concatenate([rgb, np.full((5, 6, 1), 7, dtype=np.uint8)], axis=2)
    with_alpha = encode_items(_image_spec(3, 5, 6), [encode_png(rgba, (3,))])
    np.testing.assert_array_equal(with_alpha, kept)


def test_grey_image_to_rgb_and_16_bit() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    x = encode_items(_image_spec(3, 3, 4), [encode_png(grey)])
    assert all(np.array_equal(x[0, c], grey / np.float32(255.0)) for c in range(3))
    deep = grey.astype(np.uint16) * 257
    x16 = encode_items(_image_spec(1, 3, 4), [encode_png(deep, (1, 4), bit_depth=16)])
    np.testing.assert_allclose(x16[0, 0], grey / 255.0, rtol=1e-6)


def test_other_formats_through_pillow() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (6, 6), dtype=np.uint8)
    palette = io.BytesIO()
    Image.fromarray(pixels).convert("P").save(palette, format="GIF", transparency=0)
    bmp = io.BytesIO()
    Image.fromarray(pixels).save(bmp, format="BMP")
    x = encode_items(_image_spec(1, 6, 6), [palette.getvalue(), bmp.getvalue()])
    np.testing.assert_array_equal(x[1, 0], (pixels / 255.0).astype(np.float32))
    assert x.shape == (2, 1, 6, 6)


def test_resize_is_area_average() -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (16, 16), dtype=np.uint8)
    x = encode_items(_image_spec(1, 8, 8), [encode_png(pixels)])
    blocks = (pixels / 255.0).reshape(8, 2, 8, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(x[0, 0], blocks, rtol=1e-6)
    # Upscaling by an integer factor repeats pixels; odd factors blend at the seams.
    up = encode_items(_image_spec(1, 4, 6), [encode_png(pixels[:2, :3])])
    repeated = np.kron(pixels[:2, :3] / 255.0, np.ones((2, 2)))
    np.testing.assert_allclose(up[0, 0], repeated, rtol=1e-6)
    odd = encode_items(_image_spec(1, 5, 7), [encode_png(pixels[:3, :4])])
    assert odd.shape == (1, 1, 5, 7) and np.isfinite(odd).all()


def test_image_normalisation_per_channel() -> None:
    spec = _image_spec(1, 2, 2).model_copy(
        update={"normalize": Normalization(mean=(0.5,), std=(0.5,))}
    )
    x = encode_items(spec, [encode_png(np.array([[0, 255], [255, 0]], dtype=np.uint8))])
    np.testing.assert_array_equal(x[0, 0], [[-1.0, 1.0], [1.0, -1.0]])


@pytest.mark.parametrize(
    "blob",
    [
        b"not an image",
        b"",
        encode_png(np.zeros((4, 4), dtype=np.uint8))[:40],  # truncated
        encode_png(np.zeros((4, 4), dtype=np.uint8)).replace(b"IDAT", b"IDAx"),
    ],
)
def test_undecodable_images(blob: bytes) -> None:
    good = encode_png(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(InputError, match="item 1 cannot be decoded as an image"):
        encode_items(_image_spec(1, 4, 4), [good, blob])


@pytest.mark.parametrize("side", [5_000, 100_000])
def test_oversized_image_is_refused_before_decoding(side: int) -> None:
    # A valid header and a tiny IDAT: a decompression bomb's shape without its bulk.
    tiny = encode_png(np.zeros((1, 1), dtype=np.uint8))
    bomb = tiny[:16] + struct.pack(">II", side, side) + tiny[24:29]
    bomb += struct.pack(">I", zlib.crc32(bomb[12:29])) + tiny[33:]
    with pytest.raises(InputError, match="larger than"):
        encode_items(_image_spec(1, 4, 4), [bomb])


def test_labels() -> None:
    np.testing.assert_array_equal(encode_labels(TABLE, ["y", "x", "y"]), [1, 0, 1])
    assert encode_labels(TABLE, ["x"]).dtype == np.int64
    with pytest.raises(InputError, match="label 'z' of item 1 is not one of the spec's classes"):
        encode_labels(TABLE, ["x", "z"])


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    channels=st.sampled_from([1, 3, 4]),
    filters=st.lists(st.integers(0, 4), min_size=1, max_size=5),
    target=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_png_decodes_and_resizes_within_range(
    height: int,
    width: int,
    channels: int,
    filters: list[int],
    target: tuple[int, int],
    seed: int,
) -> None:
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    blob = encode_png(pixels, filters)
    colour = 1 if channels == 1 else 3
    exact = encode_items(_image_spec(colour, height, width), [blob])[0]
    rgb = pixels if channels == 1 else pixels[:, :, :3].transpose(2, 0, 1)
    np.testing.assert_array_equal(exact, (rgb / 255.0).astype(np.float32).reshape(exact.shape))
    resized = encode_items(_image_spec(colour, *target), [blob])[0]
    assert resized.shape == (colour, *target)
    assert exact.min() - 1e-6 <= resized.min() and resized.max() <= exact.max() + 1e-6
    # The same box filter as Pillow's own 8-bit resize, less its fixed-point rounding (one level).
    image = Image.open(io.BytesIO(blob)).convert("L" if colour == 1 else "RGB")
    eight_bit = np.asarray(image.resize(target[::-1], Image.Resampling.BOX), dtype=np.float64)
    eight_bit = eight_bit.reshape(*target, colour).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(resized, eight_bit, atol=1 / 255 + 1e-6)


def _photo(height: int, width: int, seed: int = 0) -> bytes:
    # Smooth gradients plus noise: compresses like a photo, not like static.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_photos_resize_in_milliseconds() -> None:
    # Photo-sized items (375x500, ImageNet's typical size) must encode at thousands a minute.
    photos = [_photo(375, 500, seed) for seed in range(10)]
    spec = _image_spec(3, 32, 32)
    start = time.perf_counter()
    x = encode_items(spec, photos)
    assert time.perf_counter() - start < 2.0
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.float32


def test_large_jpeg_reduced_decode_matches_full_decode() -> None:
    photo = _photo(375, 500)
    fast = encode_items(_image_spec(3, 16, 16), [photo])[0]
    full = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), dtype=np.float32) / 255
    reference = np.stack(
        [np.asarray(Image.fromarray(c).resize((16, 16), Image.Resampling.BOX)) for c in full.transpose(2, 0, 1)]
    )
    # DCT-domain scaling is a slightly different low-pass filter, not a different picture.
    assert np.abs(fast - reference).mean() < 0.01
    # Deterministic: the same bytes give the same bits.
    np.testing.assert_array_equal(fast, encode_items(_image_spec(3, 16, 16), [photo])[0])
