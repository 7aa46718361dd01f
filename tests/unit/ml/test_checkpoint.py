from __future__ import annotations

import hashlib

import pytest
import torch

from databright.errors import InputError
from databright.ml import checkpoint_digest, load_checkpoint, save_checkpoint, train
from tests.unit.ml._digits import Digits


def test_round_trip_and_digest(digits: Digits) -> None:
    state = train(digits.spec, None, digits.x[:100], digits.y[:100], steps=3, seed=0)
    blob = save_checkpoint(state)
    loaded = load_checkpoint(blob)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert all(loaded[k].dtype == state[k].dtype for k in state)
    assert save_checkpoint(loaded) == blob
    assert checkpoint_digest(state) == hashlib.sha256(blob).hexdigest()
    reordered = dict(reversed(list(state.items())))
    assert checkpoint_digest(reordered) == checkpoint_digest(state)
    assert checkpoint_digest(state) != checkpoint_digest({**state, "0.bias": state["1.bias"] + 1})


def test_digest_is_pinned() -> None:
    # Guards the byte format: a safetensors upgrade that changed it would change every digest.
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2)}
    assert checkpoint_digest(state) == (
        "34b38a3fe84f466b90f8432cecc291a9aa598f198115af9b0074e4087a239c09"
    )


def test_shared_and_strided_tensors() -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {"a": base, "b": base.t(), "c": base[1]}
    loaded = load_checkpoint(save_checkpoint(state))
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize(
    "blob", [b"", b"\x00" * 8, b"garbage that is not safetensors", b"\xff" * 16]
)
def test_bad_checkpoints(blob: bytes) -> None:
    with pytest.raises(InputError, match="not a valid safetensors checkpoint"):
        load_checkpoint(blob)


def test_bad_state() -> None:
    with pytest.raises(InputError, match="names to tensors"):
        save_checkpoint({"a": [1, 2]})  # type: ignore[dict-item]
