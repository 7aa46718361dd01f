"""Training that stops and resumes bitwise: the state between steps as plain tensors.

Optimistic verification has a worker commit to its training state every k steps
and the coordinator re-execute a segment from a committed state, so a state must
hold everything the next step depends on: the weights, the optimizer's buffers,
the batch generator's RNG state, the current epoch permutation and the position
in it. :class:`Training` runs exactly the computation :func:`~databright.ml.train`
runs (same seeds, same draws, same order of operations; a test checks the bits),
but a step at a time, and :meth:`Training.snapshot` / :meth:`Training.resume`
turn its state into a name→tensor mapping that safetensors can carry (nothing is
pickled). Paired ``extra`` items are not supported here: optimistic jobs do not
use them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from databright.errors import InputError
from databright.ml._spec import ModelSpec
from databright.ml._train import Seed, _generator, _initialised, _load, _seeds, _state, _tensors, single_thread

__all__ = ["Training"]

_MODEL, _OPT, _META = "model.", "optim.", "train."


class Training:
    """One training run over ``(x, y)``, advanced with :meth:`run` and captured with :meth:`snapshot`."""

    def __init__(self, spec: ModelSpec, state: Mapping[str, Tensor] | None, x: NDArray[np.floating],
                 y: NDArray[np.integer], *, seed: Seed) -> None:
        xt, yt = _tensors(spec, x, y)
        assert yt is not None
        if len(xt) == 0:
            raise InputError("cannot train on zero items")
        self.spec, self._x, self._y = spec, xt, yt
        init_seed, batch_seed, _ = _seeds(seed, 3)
        with single_thread():
            model = _initialised(spec, init_seed) if state is None else _load(spec, dict(state))
        self._model = model
        self._optimizer = self._new_optimizer()
        self._batches = _generator(batch_seed)
        self.step = 0
        self._full = spec.batch_size == 0 or spec.batch_size >= len(xt)
        # train() draws the first permutation before the first step, even for zero steps.
        self._order = torch.zeros(0, dtype=torch.int64) if self._full else torch.randperm(
            len(xt), generator=self._batches)
        self._start = 0

    def _new_optimizer(self) -> torch.optim.Optimizer:
        params = list(self._model.parameters())
        if self.spec.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.spec.lr, weight_decay=self.spec.weight_decay)
        return torch.optim.SGD(params, lr=self.spec.lr, momentum=0.9, weight_decay=self.spec.weight_decay)

    def run(self, steps: int) -> None:
        """Train ``steps`` more steps."""
        if steps < 0:
            raise InputError(f"steps must be non-negative, got {steps}")
        size = self.spec.batch_size
        with single_thread():
            self._model.train()
            for _ in range(steps):
                if self._full:
                    xb, yb = self._x, self._y
                else:
                    if self._start + size > len(self._x):
                        self._order, self._start = torch.randperm(len(self._x), generator=self._batches), 0
                    index = self._order[self._start : self._start + size]
                    self._start += size
                    xb, yb = self._x[index], self._y[index]
                self._optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(self._model(xb), yb)
                loss.backward()  # type: ignore[no-untyped-call]
                self._optimizer.step()
                self.step += 1

    def weights(self) -> dict[str, Tensor]:
        """The model's state dict, as :func:`~databright.ml.train` returns it."""
        return _state(self._model)

    def snapshot(self) -> dict[str, Tensor]:
        """Everything the next step depends on, as tensors with stable names."""
        out = {_MODEL + k: v for k, v in _state(self._model).items()}
        for index, buffers in self._optimizer.state_dict()["state"].items():
            for key, value in buffers.items():
                tensor = value if isinstance(value, Tensor) else torch.tensor(value)
                out[f"{_OPT}{index}.{key}"] = tensor.detach().clone().contiguous()
        out[_META + "rng"] = self._batches.get_state().clone()
        out[_META + "order"] = self._order.clone()
        out[_META + "position"] = torch.tensor([self._start, self.step], dtype=torch.int64)
        return out

    @classmethod
    def resume(cls, spec: ModelSpec, snapshot: Mapping[str, Tensor], x: NDArray[np.floating],
               y: NDArray[np.integer]) -> Training:
        """The run whose :meth:`snapshot` this is, ready to continue; malformed ones raise :class:`InputError`."""
        model = {k[len(_MODEL):]: v for k, v in snapshot.items() if k.startswith(_MODEL)}
        run = cls(spec, model, x, y, seed=0)
        try:
            run._batches.set_state(snapshot[_META + "rng"].to(torch.uint8).contiguous())
            order, position = snapshot[_META + "order"], snapshot[_META + "position"]
            run._order = order.to(torch.int64).clone()
            run._start, run.step = (int(v) for v in position.tolist())
            state: dict[int, dict[str, Tensor]] = {}
            for key, value in snapshot.items():
                if key.startswith(_OPT):
                    index, name = key[len(_OPT):].split(".", 1)
                    state.setdefault(int(index), {})[name] = value.clone()
            groups = run._optimizer.state_dict()["param_groups"]
            run._optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise InputError(f"not a training snapshot of this spec: {exc}") from None
        if not run._full and (len(run._order) != len(run._x) or not 0 <= run._start <= len(run._x)):
            raise InputError("training snapshot's batch position does not fit the data")
        return run
