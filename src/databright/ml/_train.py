"""Deterministic construction, training and evaluation of the models a spec describes.

The evaluator values a proposal as the accuracy gain of the dataset's best model
fine-tuned with it over the same model fine-tuned without it, and coordinators
compare workers' results by digest, so training must be a pure function of
(spec, state, data, steps, seed) within one environment:

* every random draw (initialisation, minibatch order) comes from an explicit
  ``torch.Generator`` seeded from the caller's seed; the global RNGs of torch
  and NumPy are neither read nor changed;
* all work runs on one intra-op thread (:func:`single_thread`), so the order of
  floating-point reductions is fixed, and the caller's thread count is restored;
* parameters are created on the meta device and initialised with the seeded
  generator, so building a model does not consume the global RNG either.

Minibatches are drawn without replacement from a seeded permutation of the
training set (a new permutation each epoch); a ``batch_size`` of 0, or one at
least the size of the data, trains full batch.
"""

from __future__ import annotations

import math
import platform
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import PIL
import safetensors
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

import databright
from databright.errors import InputError
from databright.ml._rows import RowBlock, Stack, as_stack
from databright.ml._spec import ModelSpec

__all__ = [
    "Seed",
    "accuracy",
    "build_model",
    "environment",
    "predict_proba",
    "single_thread",
    "train",
]

Seed = int | np.random.Generator

#: Intra-op threads used for every training and evaluation.
TRAIN_THREADS = 1


# torch's thread count is process-wide: trainings in two threads at once would
# change it under each other, so they take turns.
_TRAINING = threading.RLock()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on :data:`TRAIN_THREADS` threads, one training at a time, restoring the count after."""
    with _TRAINING:
        previous = torch.get_num_threads()
        torch.set_num_threads(TRAIN_THREADS)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def environment() -> dict[str, str]:
    """Versions and settings that determine training results, for reproducibility reports."""
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "threads": str(TRAIN_THREADS),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "databright": databright.__version__,
    }


def _seeds(seed: Seed, count: int) -> list[int]:
    """Derive ``count`` independent 63-bit seeds (init, batches, …) from one seed."""
    if isinstance(seed, np.random.Generator):
        root = int(seed.integers(0, 2**63))
    elif isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0:
        root = int(seed)
    else:
        raise InputError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    words = np.random.SeedSequence(root).generate_state(count, dtype=np.uint64)
    return [int(w) >> 1 for w in words]


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def _layers(spec: ModelSpec) -> nn.Sequential:
    n_classes = len(spec.classes)
    if spec.kind == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(spec.input_shape)
        for size in spec.hidden:
            layers += [nn.Linear(width, size, device="meta"), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_classes, device="meta"))
        return nn.Sequential(*layers)
    assert spec.image_shape is not None
    channels, height, width = spec.image_shape
    first, second = spec.hidden
    return nn.Sequential(
        nn.Conv2d(channels, first, 3, padding=1, device="meta"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1, device="meta"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * (height // 4) * (width // 4), n_classes, device="meta"),
    )


def build_model(spec: ModelSpec, seed: Seed) -> nn.Module:
    """A freshly initialised model; the same spec and seed give identical parameters.

    Weights follow torch's default scheme (Kaiming-uniform weights, uniform biases
    in ``±1/sqrt(fan_in)``) but draw from a generator seeded by ``seed``.
    """
    (init_seed,) = _seeds(seed, 1)
    return _initialised(spec, init_seed)


def _initialised(spec: ModelSpec, init_seed: int) -> nn.Module:
    model = _layers(spec).to_empty(device="cpu")
    generator = _generator(init_seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                assert module.bias is not None
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    return model


def _load(spec: ModelSpec, state: dict[str, Tensor]) -> nn.Module:
    model = _layers(spec).to_empty(device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        summary = str(exc).strip().splitlines()[0]
        raise InputError(f"checkpoint does not fit the spec: {summary}") from None
    return model


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _check_shape(spec: ModelSpec, shape: tuple[int, ...]) -> None:
    if len(shape) < 1 or tuple(shape[1:]) != spec.input_shape:
        raise InputError(f"x has shape {shape}, expected (n, {', '.join(map(str, spec.input_shape))})")


def _tensors(
    spec: ModelSpec, x: NDArray[np.floating] | RowBlock, y: NDArray[np.integer] | None
) -> tuple[Tensor, Tensor | None]:
    x = np.asarray(x)
    _check_shape(spec, tuple(x.shape))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return xt, _labels(spec, len(x), y)


def _labels(spec: ModelSpec, n: int, y: NDArray[np.integer] | None) -> Tensor | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,):
        raise InputError(f"y has shape {tuple(y.shape)}, expected ({n},)")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"y must hold class indices (integers), got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= len(spec.classes)):
        raise InputError(f"y holds class indices outside 0..{len(spec.classes) - 1}")
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def train(
    spec: ModelSpec,
    state: dict[str, Tensor] | None,
    x: NDArray[np.floating] | RowBlock | Stack,
    y: NDArray[np.integer],
    *,
    steps: int,
    seed: Seed,
    extra: tuple[NDArray[np.floating], NDArray[np.integer]] | None = None,
) -> dict[str, Tensor]:
    """Train from scratch (``state`` None) or fine-tune from ``state`` for ``steps`` steps.

    ``x`` is encoded items (:func:`encode_items`), ``y`` class indices
    (:func:`encode_labels`). Returns the new state dict; the given one is not changed.
    ``x`` may also be rows on disk (:class:`DiskRows`, or a :class:`Stack` of
    blocks): each minibatch is then read as it is drawn, so memory holds one
    minibatch, not the dataset, and the result is the same bits.

    ``extra`` items join every minibatch in proportion to their number, drawn
    from a random stream of their own, while the minibatches of ``x`` follow
    exactly the sequence they follow without ``extra``. Training with and
    without ``extra`` under one seed is therefore paired (common random
    numbers): the two runs differ by the extra items alone, which is what a
    leave-one-out comparison wants to measure.
    """
    if isinstance(x, np.ndarray) and x.ndim < 1:
        _check_shape(spec, tuple(x.shape))
    rows = as_stack(x)
    _check_shape(spec, rows.shape)
    yt = _labels(spec, len(rows), y)
    assert yt is not None
    xe, ye = _tensors(spec, *extra) if extra is not None else (None, None)
    if steps < 0:
        raise InputError(f"steps must be non-negative, got {steps}")
    if len(rows) == 0 and steps > 0:
        raise InputError("cannot train on zero items")
    init_seed, batch_seed, extra_seed = _seeds(seed, 3)
    with single_thread():
        model = _initialised(spec, init_seed) if state is None else _load(spec, state)
        model.train()
        params = list(model.parameters())
        optimizer: torch.optim.Optimizer
        if spec.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay
            )
        extra_batches = _extra_batches(len(rows), xe, spec.batch_size, _generator(extra_seed))
        whole: Tensor | None = None
        for index in _batches(len(rows), spec.batch_size, steps, _generator(batch_seed)):
            if index is None:  # full batch: the data is small enough to hold
                whole = torch.from_numpy(np.asarray(rows)) if whole is None else whole
                xb, yb = whole, yt
            else:
                xb, yb = torch.from_numpy(rows.take(index.numpy())), yt[index]
            if xe is not None and ye is not None:
                pick = next(extra_batches)
                xb = torch.cat([xb, xe if pick is None else xe[pick]])
                yb = torch.cat([yb, ye if pick is None else ye[pick]])
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        return _state(model)


def _extra_batches(
    n: int, extra: Tensor | None, batch_size: int, generator: torch.Generator
) -> Iterator[Tensor | None]:
    """Index batches of the extra items, sized in proportion to ``batch_size / n``."""
    if extra is None or batch_size == 0 or batch_size >= n:
        while True:
            yield None
    size = max(1, round(batch_size * len(extra) / n))
    while True:
        yield torch.randint(len(extra), (size,), generator=generator)


def _batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[Tensor | None]:
    """Yield ``steps`` index batches (None: the whole set) from seeded epoch permutations."""
    if batch_size == 0 or batch_size >= n:
        for _ in range(steps):
            yield None
        return
    order = torch.randperm(n, generator=generator)
    start = 0
    for _ in range(steps):
        if start + batch_size > n:
            # Drop the ragged tail so every step sees a full batch.
            order, start = torch.randperm(n, generator=generator), 0
        yield order[start : start + batch_size]
        start += batch_size


def predict_proba(
    spec: ModelSpec, state: dict[str, Tensor], x: NDArray[np.floating] | RowBlock
) -> NDArray[np.float32]:
    """Class probabilities, shape ``(n, len(spec.classes))``, columns in class order."""
    xt, _ = _tensors(spec, x, None)
    with single_thread(), torch.no_grad():
        model = _load(spec, state).eval()
        proba = torch.softmax(model(xt), dim=1)
    out: NDArray[np.float32] = proba.numpy()
    return out


def accuracy(
    spec: ModelSpec, state: dict[str, Tensor], x: NDArray[np.floating] | RowBlock, y: NDArray[np.integer]
) -> float:
    """Fraction of items whose most probable class (lowest index on ties) is ``y``."""
    xt, yt = _tensors(spec, x, y)
    assert yt is not None
    if len(xt) == 0:
        raise InputError("accuracy needs at least one item")
    with single_thread(), torch.no_grad():
        model = _load(spec, state).eval()
        predicted = model(xt).argmax(dim=1)
    return float((predicted == yt).double().mean().item())
