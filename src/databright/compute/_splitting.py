"""Cutting a model spec at layer boundaries into pieces that train as a pipeline.

A job with ``split=k`` trains its model on k workers, each holding one piece:
the first piece maps inputs to the activations at the first cut, the last maps
the activations at the last cut to logits and computes the loss. Each step only
those activations (forward) and their gradients (backward) cross between
workers, so no worker ever holds another piece's weights.

A :class:`StageSpec` is data like a :class:`ModelSpec`: a list of allow-listed
layers (:class:`LayerSpec`) plus the training recipe, no code. Cuts fall just
before a layer with parameters, so the parameter-free layers that follow one
(ReLU, pooling, flatten) stay with it and the cut carries the smaller, pooled
activation. Among those positions :func:`cut_spec` picks the one whose most
expensive piece (by parameter count or FLOPs) is cheapest; ties go to the
earliest cuts, so cutting is deterministic.

Pipelined training gives the same bits as training the whole model
(``train_pipeline`` against :func:`databright.ml.train`): the pieces start
from the whole model's initial state cut by :func:`split_state` (the
coordinator initialises once, with the job's seed), minibatches come from the
same seeded stream, backward through a cut replays exactly the operations
autograd runs inside the whole model, and Adam and SGD update each parameter
from its own gradient alone, so k optimizers equal one.

A stage after the first can defer its weight gradients
(``backward(..., defer_weights=True)``): it first computes only the gradient at
its incoming cut, which the previous stage waits for, and the weight gradients
in :meth:`Stage.step`, while that gradient is already on its way. Autograd's one
pass is then two passes over the same graph that run the same kernels on the
same tensors (the input-gradient and weight-gradient halves of each layer's
backward are separate kernels), so the bits do not change; this is the B/W split
of zero-bubble pipelining (Qi et al., 2023, "Zero Bubble Pipeline Parallelism").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import Tensor, nn

from databright.errors import InputError
from databright.ml import ModelSpec
from databright.ml._train import _layers
from databright.storage import canonical_json

__all__ = [
    "LayerSpec",
    "Stage",
    "StageSpec",
    "cut_spec",
    "join_states",
    "split_state",
]

Balance = Literal["params", "flops"]


class LayerSpec(BaseModel):
    """One allow-listed layer; ``size`` is the output width (Linear) or channels (Conv2d)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["conv2d", "relu", "maxpool2d", "flatten", "linear"]
    inputs: int = 0
    size: int = 0
    kernel: int = 0
    padding: int = 0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.op in ("conv2d", "linear") and (self.inputs < 1 or self.size < 1):
            raise ValueError(f"a {self.op} layer needs positive inputs and size")
        if self.op in ("conv2d", "maxpool2d") and self.kernel < 1:
            raise ValueError(f"a {self.op} layer needs a positive kernel")
        if self.padding < 0:
            raise ValueError("padding must be non-negative")
        return self

    @property
    def trainable(self) -> bool:
        return self.op in ("conv2d", "linear")

    def module(self) -> nn.Module:
        """The torch layer, on the meta device (its weights come from a state dict)."""
        if self.op == "conv2d":
            return nn.Conv2d(self.inputs, self.size, self.kernel, padding=self.padding, device="meta")
        if self.op == "linear":
            return nn.Linear(self.inputs, self.size, device="meta")
        if self.op == "maxpool2d":
            return nn.MaxPool2d(self.kernel)
        return nn.ReLU() if self.op == "relu" else nn.Flatten()

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one item after this layer, or :class:`InputError` if it does not fit."""
        if self.op == "linear":
            if shape != (self.inputs,):
                raise InputError(f"linear layer expects ({self.inputs},), got {shape}")
            return (self.size,)
        if self.op == "flatten":
            return (math.prod(shape),)
        if self.op == "relu":
            return shape
        if len(shape) != 3:
            raise InputError(f"{self.op} layer expects (channels, height, width), got {shape}")
        channels, height, width = shape
        if self.op == "maxpool2d":
            return (channels, height // self.kernel, width // self.kernel)
        if channels != self.inputs:
            raise InputError(f"conv2d layer expects {self.inputs} channels, got {channels}")
        grow = 2 * self.padding - self.kernel + 1
        return (self.size, height + grow, width + grow)

    def params(self) -> int:
        if self.op == "conv2d":
            return self.size * (self.inputs * self.kernel * self.kernel + 1)
        return self.size * (self.inputs + 1) if self.op == "linear" else 0

    def flops(self, shape: tuple[int, ...]) -> int:
        """Multiply-adds of the forward pass for one item."""
        out = self.output_shape(shape)
        if self.op == "conv2d":
            return math.prod(out) * self.inputs * self.kernel * self.kernel
        return self.params() if self.op == "linear" else math.prod(out)


class StageSpec(BaseModel):
    """Piece ``index`` of ``count`` of a split model: its layers and training recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    index: int
    count: int
    first_layer: int
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    classes: int
    optimizer: Literal["adam", "sgd"]
    lr: float
    weight_decay: float

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not 0 <= self.index < self.count:
            raise ValueError(f"stage index {self.index} outside 0..{self.count - 1}")
        if not self.layers:
            raise ValueError("a stage needs at least one layer")
        try:
            shape = self.output_shape
        except InputError as exc:
            raise ValueError(str(exc)) from None
        if self.last and shape != (self.classes,):
            raise ValueError(f"the last stage must end in {self.classes} logits, got {shape}")
        return self

    @property
    def last(self) -> bool:
        return self.index == self.count - 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one item's activation at this stage's outgoing cut (logits if last)."""
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def keys(self) -> dict[str, str]:
        """Whole-model state key to this stage's state key, for every parameter."""
        mapping: dict[str, str] = {}
        for local, layer in enumerate(self.layers):
            if layer.trainable:
                for name in ("weight", "bias"):
                    mapping[f"{self.first_layer + local}.{name}"] = f"{local}.{name}"
        return mapping

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json")).decode("utf-8")

    @classmethod
    def from_json(cls, data: str | bytes) -> StageSpec:
        try:
            return cls.model_validate_json(data)
        except ValueError as exc:
            raise InputError(f"invalid stage spec: {str(exc).splitlines()[0]}") from None


def _describe(spec: ModelSpec) -> list[LayerSpec]:
    """The spec's layers as data, read from the very modules :func:`databright.ml.train` builds."""
    described: list[LayerSpec] = []
    for module in _layers(spec):
        if isinstance(module, nn.Conv2d):
            padding = module.padding
            # _layers pads by a number, never by a mode name such as "same".
            assert isinstance(padding, tuple)
            described.append(
                LayerSpec(
                    op="conv2d",
                    inputs=module.in_channels,
                    size=module.out_channels,
                    kernel=module.kernel_size[0],
                    padding=padding[0],
                )
            )
        elif isinstance(module, nn.Linear):
            described.append(
                LayerSpec(op="linear", inputs=module.in_features, size=module.out_features)
            )
        elif isinstance(module, nn.MaxPool2d):
            assert isinstance(module.kernel_size, int)
            described.append(LayerSpec(op="maxpool2d", kernel=module.kernel_size))
        elif isinstance(module, nn.ReLU):
            described.append(LayerSpec(op="relu"))
        elif isinstance(module, nn.Flatten):
            described.append(LayerSpec(op="flatten"))
        else:  # pragma: no cover - _layers builds only the kinds above
            raise InputError(f"layer {type(module).__name__} is not allow-listed for splitting")
    return described


def cut_spec(spec: ModelSpec, k: int, *, balance: Balance = "params") -> tuple[StageSpec, ...]:
    """Cut ``spec`` into ``k`` stage specs balanced by parameter count or FLOPs."""
    layers = _describe(spec)
    shapes = [spec.input_shape]
    for layer in layers:
        shapes.append(layer.output_shape(shapes[-1]))
    candidates = [i for i, layer in enumerate(layers) if layer.trainable][1:]
    if not 1 <= k <= len(candidates) + 1:
        raise InputError(
            f"split={k}: this model can be cut into 1 to {len(candidates) + 1} pieces"
        )
    if balance == "params":
        costs = [layer.params() for layer in layers]
    else:
        costs = [layer.flops(shape) for layer, shape in zip(layers, shapes, strict=False)]
    best: tuple[int, ...] = ()
    best_cost = -1
    # Few layers, few cuts: trying every combination is cheap and obviously right;
    # combinations come in lexicographic order, so strict < keeps the earliest.
    for cuts in itertools.combinations(candidates, k - 1):
        bounds = (0, *cuts, len(layers))
        worst = max(sum(costs[a:b]) for a, b in itertools.pairwise(bounds))
        if best_cost < 0 or worst < best_cost:
            best, best_cost = cuts, worst
    bounds = (0, *best, len(layers))
    return tuple(
        StageSpec(
            index=i,
            count=k,
            first_layer=a,
            input_shape=shapes[a],
            layers=tuple(layers[a:b]),
            classes=len(spec.classes),
            optimizer=spec.optimizer,
            lr=spec.lr,
            weight_decay=spec.weight_decay,
        )
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    )


def split_state(stages: Sequence[StageSpec], state: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """Cut a whole model's state into one state per stage (copies, nothing shared)."""
    pieces: list[dict[str, Tensor]] = []
    used: set[str] = set()
    for stage in stages:
        piece: dict[str, Tensor] = {}
        for whole, local in stage.keys().items():
            if whole not in state:
                raise InputError(f"checkpoint lacks {whole!r} for stage {stage.index}")
            piece[local] = state[whole].detach().clone().contiguous()
            used.add(whole)
        pieces.append(piece)
    if used != set(state):
        raise InputError(f"checkpoint has keys no stage owns: {sorted(set(state) - used)}")
    return pieces


def join_states(stages: Sequence[StageSpec], pieces: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Assemble the whole model's state from every stage's state (the coordinator's job)."""
    if len(pieces) != len(stages):
        raise InputError(f"expected {len(stages)} stage states, got {len(pieces)}")
    whole: dict[str, Tensor] = {}
    for stage, piece in zip(stages, pieces, strict=True):
        mapping = stage.keys()
        if set(piece) != set(mapping.values()):
            raise InputError(f"stage {stage.index} state has keys {sorted(piece)}")
        for key, local in mapping.items():
            whole[key] = piece[local].detach().clone().contiguous()
    return whole


class Stage:
    """One worker's piece in training: forward to the cut, backward from it, step.

    Callers run it inside :func:`databright.ml.single_thread`, as training does.
    """

    def __init__(self, spec: StageSpec, state: dict[str, Tensor]) -> None:
        self.spec = spec
        self.model = nn.Sequential(*(layer.module() for layer in spec.layers)).to_empty(
            device="cpu"
        )
        try:
            self.model.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, TypeError) as exc:
            summary = str(exc).strip().splitlines()[0]
            raise InputError(f"stage {spec.index} state does not fit: {summary}") from None
        self.model.train()
        params = list(self.model.parameters())
        self.optimizer: torch.optim.Optimizer
        if spec.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(
                params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay
            )
        self._input: Tensor | None = None
        self._output: Tensor | None = None
        # Outputs of the trainable layers, kept so their weight gradients can be deferred,
        # and the (output, gradient, layer) triples a deferred backward leaves for step().
        self._marks: list[tuple[Tensor, nn.Module]] = []
        self._pending: list[tuple[Tensor, Tensor, nn.Module]] = []

    def forward(self, x: Tensor) -> Tensor:
        """Activations at the outgoing cut (detached: they are what crosses the wire)."""
        self.optimizer.zero_grad(set_to_none=True)
        incoming = self.spec.index > 0
        self._input = x.detach().requires_grad_(incoming)
        self._marks, self._pending = [], []
        # Layer by layer, as nn.Sequential runs them, noting the outputs a deferred backward needs.
        out = self._input
        for layer in self.model:
            out = layer(out)
            if incoming and isinstance(layer, (nn.Conv2d, nn.Linear)):
                self._marks.append((out, layer))
        self._output = out
        return out.detach()

    def loss_backward(self, y: Tensor, *, defer_weights: bool = False) -> Tensor | None:
        """Last stage: cross-entropy on the logits, backward; the gradient at the incoming cut."""
        if self._output is None or self._input is None:
            raise InputError("loss_backward before forward")
        loss = nn.functional.cross_entropy(self._output, y)
        return self._backward(loss, None, defer_weights)

    def backward(self, grad: Tensor, *, defer_weights: bool = False) -> Tensor | None:
        """A stage before the last: backward from the outgoing cut's gradient."""
        if self._output is None or self._input is None:
            raise InputError("backward before forward")
        if grad.shape != self._output.shape or grad.dtype != self._output.dtype:
            raise InputError(
                f"gradient {tuple(grad.shape)} {grad.dtype} does not match the activation "
                f"{tuple(self._output.shape)} {self._output.dtype}"
            )
        return self._backward(self._output, grad, defer_weights)

    def _backward(self, root: Tensor, grad: Tensor | None, defer: bool) -> Tensor | None:
        source, marks = self._input, self._marks
        assert source is not None
        self._input = self._output = None
        self._marks = []
        if not (defer and source.requires_grad):
            root.backward(grad)  # type: ignore[no-untyped-call]
            return None if source.grad is None else source.grad.detach()
        outputs = [output for output, _ in marks]
        grads = torch.autograd.grad(root, [source, *outputs], grad_outputs=grad, retain_graph=True)
        self._pending = [
            (output, g, layer) for (output, layer), g in zip(marks, grads[1:], strict=True)
        ]
        return grads[0].detach()

    def step(self) -> None:
        """Compute any deferred weight gradients, then update the weights."""
        for output, grad, layer in self._pending:
            # Each trainable layer's own weights from the gradient at its output: only
            # that layer's backward node runs, so nothing is computed twice or summed twice.
            torch.autograd.backward(output, grad, inputs=list(layer.parameters()))
        self._pending = []
        self.optimizer.step()

    def state(self) -> dict[str, Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.model.state_dict().items()}

