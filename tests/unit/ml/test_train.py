from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor

from databright.errors import InputError
from databright.ml import (
    ModelSpec,
    accuracy,
    build_model,
    default_spec,
    encode_items,
    encode_labels,
    environment,
    load_checkpoint,
    predict_proba,
    save_checkpoint,
    train,
)
from tests.unit.ml._digits import Digits
from tests.unit.ml._png import encode_png


def _equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_bit_identical(digits: Digits) -> None:
    spec, x, y = digits
    first = train(spec, None, x[:800], y[:800], steps=50, seed=7)
    second = train(spec, None, x[:800], y[:800], steps=50, seed=7)
    assert _equal(first, second)
    assert not _equal(first, train(spec, None, x[:800], y[:800], steps=50, seed=8))
    tuned = [train(spec, first, x[800:1200], y[800:1200], steps=20, seed=3) for _ in range(2)]
    assert _equal(*tuned)
    assert not _equal(first, tuned[0])


def test_minibatches_are_seeded(digits: Digits) -> None:
    spec = digits.spec.model_copy(update={"batch_size": 64, "optimizer": "sgd", "lr": 0.05})
    x, y = digits.x[:300], digits.y[:300]
    a = train(spec, None, x, y, steps=12, seed=1)
    assert _equal(a, train(spec, None, x, y, steps=12, seed=1))
    # Same initialisation, different batch order: numpy Generators are accepted too.
    b = train(spec, None, x, y, steps=12, seed=np.random.default_rng(5))
    assert not _equal(a, b)


def test_build_model_is_seeded_and_leaves_global_rng_alone(digits: Digits) -> None:
    before = torch.random.get_rng_state()
    a, b, c = (build_model(digits.spec, s).state_dict() for s in (0, 0, 1))
    assert torch.equal(before, torch.random.get_rng_state())
    assert _equal(a, b) and not _equal(a, c)
    train(digits.spec, None, digits.x[:100], digits.y[:100], steps=2, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())


def test_training_restores_thread_count(digits: Digits) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        state = train(digits.spec, None, digits.x[:100], digits.y[:100], steps=2, seed=0)
        assert torch.get_num_threads() == 3
        accuracy(digits.spec, state, digits.x[:10], digits.y[:10])
        assert torch.get_num_threads() == 3
        with pytest.raises(InputError):
            bad = {"bad": torch.zeros(1)}
            train(digits.spec, bad, digits.x[:10], digits.y[:10], steps=1, seed=0)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    assert environment()["threads"] == "1"


def test_finetuning_from_checkpoint_improves_accuracy(digits: Digits) -> None:
    spec, x, y = digits
    x_val, y_val = x[1300:], y[1300:]
    base = train(spec, None, x[:60], y[:60], steps=30, seed=0)
    base_acc = accuracy(spec, base, x_val, y_val)
    restored = load_checkpoint(save_checkpoint(base))
    # Leave-one-out style: the same fine-tuning with and without the extra data.
    without = train(spec, restored, x[:60], y[:60], steps=spec.finetune_steps, seed=1)
    with_more = train(spec, restored, x[:800], y[:800], steps=spec.finetune_steps, seed=1)
    gain = accuracy(spec, with_more, x_val, y_val) - accuracy(spec, without, x_val, y_val)
    assert accuracy(spec, with_more, x_val, y_val) > max(base_acc, 0.85)
    assert gain > 0.05


def test_cnn_trains_deterministically() -> None:
    rng = np.random.default_rng(0)
    spec = ModelSpec(
        kind="cnn",
        input="image",
        image_shape=(1, 12, 12),
        classes=("dark", "light"),
        hidden=(4, 8),
        lr=1e-2,
        batch_size=16,
    )
    y = rng.integers(0, 2, 64)
    x = (rng.normal(size=(64, 1, 12, 12)) + 2.0 * y[:, None, None, None]).astype(np.float32)
    a = train(spec, None, x, y, steps=30, seed=2)
    assert _equal(a, train(spec, None, x, y, steps=30, seed=2))
    assert accuracy(spec, a, x, y) > 0.9
    proba = predict_proba(spec, a, x[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_bad_shapes(digits: Digits) -> None:
    spec, x, y = digits
    with pytest.raises(InputError, match=r"x has shape \(10, 63\), expected \(n, 64\)"):
        train(spec, None, x[:10, :63], y[:10], steps=1, seed=0)
    with pytest.raises(InputError, match="y has shape"):
        train(spec, None, x[:10], y[:9], steps=1, seed=0)
    with pytest.raises(InputError, match="outside"):
        train(spec, None, x[:10], y[:10] + 10, steps=1, seed=0)
    with pytest.raises(InputError, match="seed"):
        train(spec, None, x[:10], y[:10], steps=1, seed=-1)
    other = spec.model_copy(update={"hidden": (32,)})
    state = train(spec, None, x[:10], y[:10], steps=1, seed=0)
    with pytest.raises(InputError, match="checkpoint does not fit the spec"):
        accuracy(other, state, x[:10], y[:10])


def test_digits_as_png_files_train_end_to_end() -> None:
    data = load_digits()
    blobs = [encode_png((image * 15).astype(np.uint8)) for image in data.images[:600]]
    labels = [str(t) for t in data.target[:600]]
    spec = default_spec("files", blobs[:300], labels[:300])
    assert (spec.kind, spec.image_shape) == ("mlp", (1, 8, 8))
    x, y = encode_items(spec, blobs), encode_labels(spec, labels)
    state = train(spec, None, x[:400], y[:400], steps=spec.pretrain_steps, seed=0)
    assert accuracy(spec, state, x[400:], y[400:]) > 0.75
