from __future__ import annotations

import pytest
import torch
from torch import Tensor

from databright.errors import InputError
from databright.ml import load_checkpoint, save_checkpoint, train
from databright.ml._resumable import Training
from tests.unit.ml._digits import Digits


def _equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("optimizer", "batch_size"), [("sgd", 64), ("adam", 50), ("adam", 0)])
def test_segments_resumed_from_safetensors_give_train_bits(digits: Digits, optimizer: str,
                                                           batch_size: int) -> None:
    spec = digits.spec.model_copy(update={"batch_size": batch_size, "optimizer": optimizer, "lr": 0.05})
    x, y = digits.x[:300], digits.y[:300]
    start = train(spec, None, x, y, steps=3, seed=11)
    whole = train(spec, start, x, y, steps=17, seed=4)
    run = Training(spec, start, x, y, seed=4)
    for steps in (0, 5, 1, 6, 5):
        # Every segment restarts from the serialised snapshot alone, as a verifier would.
        run = Training.resume(spec, load_checkpoint(save_checkpoint(run.snapshot())), x, y)
        run.run(steps)
    assert run.step == 17
    assert _equal(run.weights(), whole)
    assert not _equal(run.weights(), train(spec, start, x, y, steps=16, seed=4))


def test_a_snapshot_that_does_not_fit_is_refused(digits: Digits) -> None:
    spec, x, y = digits.spec, digits.x[:100], digits.y[:100]
    snapshot = Training(spec, None, x, y, seed=1).snapshot()
    del snapshot["train.rng"]
    with pytest.raises(InputError, match="training snapshot"):
        Training.resume(spec, snapshot, x, y)
