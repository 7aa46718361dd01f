from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

import databright.ml as ml
from databright.errors import InputError
from databright.ml import ModelSpec, Normalization, default_spec
from databright.storage import canonical_json
from tests.unit.ml._png import encode_png


def test_exports_sorted_and_resolve() -> None:
    assert ml.__all__ == sorted(ml.__all__)
    for name in ml.__all__:
        assert hasattr(ml, name), name


def test_json_round_trip() -> None:
    spec = ModelSpec(
        kind="cnn",
        input="image",
        image_shape=(1, 28, 28),
        classes=("cat", "dog"),
        hidden=(8, 16),
        normalize=Normalization(mean=(0.5,), std=(0.25,)),
    )
    text = spec.to_json()
    assert ModelSpec.from_json(text) == spec
    assert ModelSpec.from_json(text.encode()).to_json() == text
    assert '"image_shape":[1,28,28]' in text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"kind":"rnn","input":"table","features":["a"],"classes":["x"]}', "kind"),
        ('{"kind":"mlp","input":"table","features":[],"classes":["x"]}', "feature"),
        ('{"kind":"cnn","input":"table","features":["a"],"classes":["x"]}', "cnn"),
        ('{"kind":"mlp","input":"table","features":["a"],"classes":["x","x"]}', "unique"),
        ('{"kind":"mlp","input":"image","classes":["x"]}', "image_shape"),
        ('{"kind":"mlp","input":"table","features":["a"],"classes":["x"],"extra":1}', "extra"),
        (
            '{"kind":"mlp","input":"table","features":["a","b"],"classes":["x"],'
            '"normalize":{"mean":[0],"std":[1]}}',
            "normalize",
        ),
        ("not json", "invalid"),
    ],
)
def test_from_json_rejects_bad_specs(text: str, needle: str) -> None:
    with pytest.raises(InputError, match="invalid model spec") as info:
        ModelSpec.from_json(text)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_spec_is_frozen() -> None:
    spec = ModelSpec(kind="mlp", input="table", features=("a",), classes=("x",))
    with pytest.raises(ValidationError):
        spec.lr = 1.0


def test_default_spec_table_is_mlp_over_numeric_columns() -> None:
    rows = [
        {"b": 2, "a": 1.0, "name": "x", "c": None},
        {"b": 4, "a": 3.0, "name": "y", "c": 1.5},
    ]
    spec = default_spec("table", [canonical_json(r) for r in rows], ["no", "yes"])
    assert spec.kind == "mlp" and spec.input == "table"
    assert spec.features == ("a", "b", "c")
    assert spec.classes == ("no", "yes")
    assert spec.normalize is not None
    assert spec.normalize.mean == (2.0, 3.0, 0.75)
    assert spec.normalize.std == (1.0, 1.0, 0.75)


def _images(shape: tuple[int, ...], n: int = 4) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [encode_png(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(n)]


def test_default_spec_small_image_is_mlp() -> None:
    spec = default_spec("files", _images((8, 8)), ["0", "1", "0", "1"])
    assert (spec.kind, spec.input, spec.image_shape) == ("mlp", "image", (1, 8, 8))
    assert spec.normalize is not None and len(spec.normalize.mean) == 1


def test_default_spec_large_image_is_cnn() -> None:
    spec = default_spec("files", _images((28, 28)), ["a", "b", "c", "a"])
    assert (spec.kind, spec.image_shape, len(spec.hidden)) == ("cnn", (1, 28, 28), 2)
    assert spec.classes == ("a", "b", "c")


def test_default_spec_colour_and_size() -> None:
    items = _images((20, 30, 3), 2) + _images((10, 10), 1)
    spec = default_spec("files", items, ["a", "b", "c"])
    assert spec.image_shape == (3, 20, 30)
    big = default_spec("files", _images((256, 128), 1), ["a"])
    assert big.image_shape == (1, 64, 32)


def test_default_spec_bad_input() -> None:
    with pytest.raises(InputError, match="unknown dataset kind"):
        default_spec("audio", [b"{}"], ["a"])
    with pytest.raises(InputError, match="labels"):
        default_spec("table", [b'{"a":1}'], [])
    with pytest.raises(InputError, match="no numeric feature"):
        default_spec("table", [b'{"a":"x"}'], ["a"])
    with pytest.raises(InputError, match="item 1 cannot be decoded"):
        default_spec("files", [*_images((8, 8), 1), b"not an image"], ["a", "b"])
