"""One stage worker's training loop over the stage channel.

Stage 0 holds the task's shard and draws the minibatches (the same seeded
stream :func:`databright.ml.train` draws); each step it sends the activations
at its cut and the batch's labels downstream, the last stage computes the loss
and sends the gradient at its cut back, and every stage steps its own
optimizer. Middle stages relay labels. Only activations, labels and gradients
cross; each worker's weights stay with it until it returns them to the
coordinator.

The previous stage waits for the gradient at the cut, so every stage after the
first sends it as soon as it has it and computes its own weight gradients
afterwards (:meth:`Stage.step` with ``defer_weights``): the upstream stage's
backward, update and next forward then overlap this stage's weight gradients
and update, on another core, with the same bits as whole-model training.
Splitting each minibatch into micro-batches (GPipe) would overlap more, but
summing micro-batch gradients changes the order of floating-point additions
and so the bits, which verification by digest cannot accept.

The loop does not set torch's thread count: a worker process calls it inside
:func:`databright.ml.single_thread`, and tests that run two stages as threads
of one process hold that once for both.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from databright.compute._splitting import Stage, StageSpec
from databright.compute._stage_channel import Kind, low_latency, read_frame, write_frame, write_frames
from databright.errors import InputError
from databright.ml import ModelSpec, single_thread
from databright.ml._train import _batches, _generator, _seeds, _tensors

__all__ = ["StageTimes", "run_stage", "stage_batches", "train_pipeline"]


@dataclass
class StageTimes:
    """Where one stage's time went, in seconds.

    Wall time: ``compute`` is the stage's own work (``forward`` its share in
    forward passes), ``channel`` the time spent writing to or waiting on the
    channel, and ``reply`` the time from having a step's input to having the
    gradient that goes back upstream: what the previous stage waits for beyond
    the transfers themselves. CPU time of the stage's thread, which other load on
    the machine does not stretch: ``cpu`` for the whole loop, ``reply_cpu`` from
    starting to read a step's input to having sent its gradient upstream (the
    part of this stage's work that the previous stage waits for).
    """

    forward: float = 0.0
    compute: float = 0.0
    channel: float = 0.0
    bytes_sent: int = 0
    steps: int = 0
    reply: float = 0.0
    cpu: float = 0.0
    reply_cpu: float = 0.0


class _Clock:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        """Seconds since the previous lap."""
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


def stage_batches(
    spec: ModelSpec, x: NDArray[np.floating], y: NDArray[np.integer], *, steps: int, seed: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stage 0's minibatches: exactly those ``train(spec, …, seed=seed)`` uses."""
    xt, yt = _tensors(spec, x, y)
    assert yt is not None
    if steps < 0:
        raise InputError(f"steps must be non-negative, got {steps}")
    if len(xt) == 0 and steps > 0:
        raise InputError("cannot train on zero items")
    _, batch_seed, _ = _seeds(seed, 3)
    for index in _batches(len(xt), spec.batch_size, steps, _generator(batch_seed)):
        yield (xt, yt) if index is None else (xt[index], yt[index])


def run_stage(
    stage: Stage,
    *,
    steps: int,
    batch: int,
    upstream: socket.socket | None,
    downstream: socket.socket | None,
    batches: Iterator[tuple[Tensor, Tensor]] | None = None,
) -> StageTimes:
    """Train ``stage`` for ``steps`` steps of ``batch`` items, talking to its neighbours."""
    spec = stage.spec
    if (upstream is None) != (spec.index == 0) or (downstream is None) != spec.last:
        raise InputError(f"stage {spec.index} of {spec.count} is wired to the wrong neighbours")
    if spec.index == 0 and batches is None:
        raise InputError("the first stage needs the minibatches")
    for sock in (upstream, downstream):
        if sock is not None:
            low_latency(sock)
    times = StageTimes()
    in_shape = (batch, *spec.input_shape)
    out_shape = (batch, *spec.output_shape)
    defer = upstream is not None
    clock = _Clock()
    started = time.thread_time()
    for step in range(steps):
        step_cpu = time.thread_time()
        if upstream is None:
            assert batches is not None
            xb, yb = next(batches)
            times.compute += clock.lap()
        else:
            xb = read_frame(upstream, kind=Kind.ACTIVATION, step=step, dtype=torch.float32, shape=in_shape)
            yb = read_frame(upstream, kind=Kind.LABELS, step=step, dtype=torch.int64, shape=(batch,))
            times.channel += clock.lap()
        activation = stage.forward(xb)
        forward = clock.lap()
        times.forward += forward
        times.compute += forward
        reply = forward
        if downstream is None:
            grad = stage.loss_backward(yb, defer_weights=defer)
        else:
            times.bytes_sent += write_frames(
                downstream, [(Kind.ACTIVATION, step, activation), (Kind.LABELS, step, yb)]
            )
            outgoing = read_frame(
                downstream, kind=Kind.GRADIENT, step=step, dtype=torch.float32, shape=out_shape
            )
            waited = clock.lap()
            times.channel += waited
            reply += waited
            grad = stage.backward(outgoing, defer_weights=defer)
        backward = clock.lap()
        times.compute += backward
        if upstream is not None:
            assert grad is not None
            times.reply += reply + backward
            times.bytes_sent += write_frame(upstream, Kind.GRADIENT, step, grad)
            times.channel += clock.lap()
            times.reply_cpu += time.thread_time() - step_cpu
        stage.step()
        times.compute += clock.lap()
        times.steps += 1
    times.cpu = time.thread_time() - started
    return times


def train_pipeline(
    stages: Sequence[StageSpec],
    states: Sequence[dict[str, Tensor]],
    spec: ModelSpec,
    x: NDArray[np.floating],
    y: NDArray[np.integer],
    *,
    steps: int,
    seed: int,
) -> list[dict[str, Tensor]]:
    """Train the pieces in one process, stage by stage, with no channel between them.

    The reference that workers over the channel must match, and bitwise equal to
    ``train(spec, join_states(stages, states), x, y, steps=steps, seed=seed)``.
    """
    with single_thread():
        workers = [Stage(s, st) for s, st in zip(stages, states, strict=True)]
        for xb, yb in stage_batches(spec, x, y, steps=steps, seed=seed):
            activation = xb
            for worker in workers:
                activation = worker.forward(activation)
            grad = workers[-1].loss_backward(yb)
            for worker in reversed(workers[:-1]):
                assert grad is not None
                grad = worker.backward(grad)
            for worker in workers:
                worker.step()
        return [w.state() for w in workers]
