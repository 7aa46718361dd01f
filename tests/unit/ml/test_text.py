"""The default text classifier: hashed n-gram features and the MLP spec path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from databright.errors import InputError
from databright.ml import ModelSpec, accuracy, default_spec, encode_items, encode_labels, train
from databright.storage import encode_pair
from databright.valuation import loo_gain, quality_signals

SPORT = "goal match team score referee league striker keeper penalty season coach stadium".split()
FOOD = "recipe oven flour butter sauce garlic simmer onion pepper dough roast salad".split()
GLUE = "the a and with after before today really very".split()


def _corpus(n: int, seed: int) -> tuple[list[bytes], list[str]]:
    rng = np.random.default_rng(seed)
    blobs, labels = [], []
    for i in range(n):
        label = "sport" if i % 2 else "food"
        words = SPORT if label == "sport" else FOOD
        sentence = [str(rng.choice(words if rng.random() < 0.6 else GLUE)) for _ in range(8)]
        blobs.append(" ".join(sentence).encode())
        labels.append(label)
    return blobs, labels


@pytest.fixture(scope="module")
def corpus() -> tuple[ModelSpec, list[bytes], list[str]]:
    blobs, labels = _corpus(400, 0)
    spec = default_spec("text", blobs[:50], labels[:50])
    return spec, blobs, labels


def test_default_text_spec_and_features(corpus: tuple[ModelSpec, list[bytes], list[str]]) -> None:
    spec, blobs, _ = corpus
    assert (spec.input, spec.kind, spec.text_dim, spec.classes) == ("text", "mlp", 2048, ("food", "sport"))
    assert ModelSpec.from_json(spec.to_json()) == spec
    x = encode_items(spec, blobs[:20])
    assert x.dtype == np.float32 and x.shape == (20, 2048)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)  # unit vectors
    # Case and spacing do not matter; the words do.
    same = encode_items(spec, [b"Goal  MATCH team", b"goal match team", b"onion sauce"])
    assert same[0].tobytes() == same[1].tobytes() and not np.array_equal(same[0], same[2])
    pair = encode_items(spec, [encode_pair("goal match", "Tor Spiel", "x")])
    assert pair.shape == (1, 2048)


def test_features_and_training_are_the_same_bits_twice(corpus: tuple[ModelSpec, list[bytes], list[str]]) -> None:
    spec, blobs, labels = corpus
    x, y = encode_items(spec, blobs[:200]), encode_labels(spec, labels[:200])
    assert encode_items(spec, blobs[:200]).tobytes() == x.tobytes()
    first = train(spec, None, x, y, steps=50, seed=3)
    again = train(spec, None, x, y, steps=50, seed=3)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_gain_and_knn_shapley_work_on_text(corpus: tuple[ModelSpec, list[bytes], list[str]]) -> None:
    spec, blobs, labels = corpus
    x, y = encode_items(spec, blobs), encode_labels(spec, labels)
    accepted, clean, validation = (x[:100], y[:100]), (x[100:200], y[100:200]), (x[300:], y[300:])
    flipped = (x[200:300], 1 - y[200:300])
    checkpoint = train(spec, None, *accepted, steps=spec.pretrain_steps, seed=0)
    assert accuracy(spec, checkpoint, *validation) > 0.9
    good, _ = loo_gain(spec, checkpoint, accepted, clean, validation, [0, 1])
    bad, _ = loo_gain(spec, checkpoint, accepted, flipped, validation, [0, 1])
    assert bad.mean < good.mean
    cids = [f"c{i}" for i in range(300)]
    clean_signals = quality_signals(accepted[0], accepted[1], cids[:100], *clean, cids[100:200], *validation)
    flipped_signals = quality_signals(accepted[0], accepted[1], cids[:100], *flipped, cids[200:300], *validation)
    assert flipped_signals.knn_mean < 0 < clean_signals.knn_mean
    assert len(flipped_signals.suspected_mislabels) > 50


def test_bad_text_items_and_specs_are_refused(corpus: tuple[ModelSpec, list[bytes], list[str]]) -> None:
    spec, _, _ = corpus
    with pytest.raises(InputError, match="item 1: not a text item \\(invalid UTF-8\\)"):
        encode_items(spec, [b"fine", b"\xff"])
    with pytest.raises(InputError, match="text_dim must be a power of two"):
        ModelSpec.from_json(spec.to_json().replace('"text_dim":2048', '"text_dim":1000'))
    with pytest.raises(InputError, match="only a text spec has text_dim"):
        ModelSpec.from_json('{"kind":"mlp","input":"table","features":["a"],"classes":["x"],"text_dim":16}')


def test_table_and_image_specs_keep_their_bytes() -> None:
    spec = ModelSpec(kind="mlp", input="table", features=("a",), classes=("x",))
    assert "text_dim" not in spec.to_json()  # digests of specs written before text are unchanged
