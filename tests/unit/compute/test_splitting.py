"""Cutting a spec into pieces, and pipelined training that gives the whole model's bits."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import torch
from torch import Tensor

from databright.compute._pipeline import StageTimes, run_stage, stage_batches, train_pipeline
from databright.compute._splitting import Stage, StageSpec, cut_spec, join_states, split_state
from databright.errors import InputError
from databright.ml import ModelSpec, build_model, single_thread, train

CNN = ModelSpec(
    kind="cnn",
    input="image",
    image_shape=(3, 8, 8),
    classes=("a", "b", "c"),
    hidden=(4, 8),
    batch_size=16,
    lr=1e-2,
)
MLP = ModelSpec(
    kind="mlp",
    input="table",
    features=("f0", "f1", "f2", "f3"),
    classes=("neg", "pos"),
    hidden=(16, 8),
    optimizer="sgd",
    batch_size=10,
    weight_decay=1e-3,
)


def _data(spec: ModelSpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, *spec.input_shape)).astype(np.float32)
    y = rng.integers(0, len(spec.classes), size=n)
    return x, y


def _state(spec: ModelSpec, seed: int) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in build_model(spec, seed).state_dict().items()}


def _equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("spec", "k"), [(CNN, 2), (CNN, 3), (MLP, 2), (MLP, 3)])
def test_pipeline_training_is_bitwise_the_whole_model(spec: ModelSpec, k: int) -> None:
    x, y = _data(spec, 64)
    start = _state(spec, 11)
    stages = cut_spec(spec, k)
    assert len(stages) == k
    pieces = train_pipeline(stages, split_state(stages, start), spec, x, y, steps=12, seed=5)
    whole = train(spec, start, x, y, steps=12, seed=5)
    assembled = join_states(stages, pieces)
    assert _equal(assembled, whole)
    assert not _equal(assembled, start)


@pytest.mark.parametrize("spec", [CNN, MLP])
def test_deferred_weight_gradients_give_the_same_bits(spec: ModelSpec) -> None:
    """Sending the cut's gradient first and computing weight gradients in step() changes no bit."""
    x, y = _data(spec, 64)
    stages = cut_spec(spec, 3)
    states = split_state(stages, _state(spec, 7))
    with single_thread():
        plain, deferred = ([Stage(s, st) for s, st in zip(stages, states, strict=True)] for _ in range(2))
        for xb, yb in stage_batches(spec, x, y, steps=6, seed=2):
            crossing: list[list[Tensor | None]] = []
            for workers, defer in ((plain, False), (deferred, True)):
                activation = xb
                for worker in workers:
                    activation = worker.forward(activation)
                grad = workers[-1].loss_backward(yb, defer_weights=defer)
                crossing.append([grad])
                for worker in reversed(workers[:-1]):
                    assert grad is not None
                    grad = worker.backward(grad, defer_weights=defer)
                    crossing[-1].append(grad)
            assert crossing[0][-1] is None and crossing[1][-1] is None
            assert all(torch.equal(a, b) for a, b in zip(crossing[0][:-1], crossing[1][:-1], strict=True))
            # Deferred: the stages after the first hold no weight gradient until they step.
            assert all(p.grad is None for w in deferred[1:] for p in w.model.parameters())
            assert all(p.grad is not None for w in plain for p in w.model.parameters())
            for worker in plain + deferred:
                worker.step()
    for a, b in zip(plain, deferred, strict=True):
        assert _equal(a.state(), b.state())
    assert _equal(
        join_states(stages, [w.state() for w in deferred]),
        train(spec, join_states(stages, states), x, y, steps=6, seed=2),
    )


def test_pieces_hold_disjoint_weights_that_join_back() -> None:
    stages = cut_spec(CNN, 3)
    start = _state(CNN, 0)
    pieces = split_state(stages, start)
    owned = [set(s.keys()) for s in stages]
    assert set().union(*owned) == set(start)
    assert sum(len(o) for o in owned) == len(start)
    assert _equal(join_states(stages, pieces), start)


def test_cut_is_deterministic_balanced_and_data() -> None:
    by_params = cut_spec(CNN, 2)
    assert by_params == cut_spec(CNN, 2)
    # The CNN's linear head (8*2*2*3 + 3 = 99) is lighter than conv2 (8*(4*9+1) = 296),
    # so balancing parameters puts conv1 alone and conv2 with the head... or conv1+conv2
    # against the head: the cheaper worst piece wins.
    costs = [sum(layer.params() for layer in s.layers) for s in by_params]
    assert max(costs) == min(
        max(112, 296 + 99), max(112 + 296, 99)
    )
    by_flops = cut_spec(CNN, 2, balance="flops")
    assert [s.first_layer for s in by_flops][1] in (3, 7)
    for stage in by_params:
        assert StageSpec.from_json(stage.to_json()) == stage
    # Activations cross after pooling: a cut sits just before a layer with weights.
    assert by_params[1].layers[0].trainable
    assert by_params[0].output_shape == by_params[1].input_shape


def test_bad_splits_and_stage_specs_are_refused() -> None:
    with pytest.raises(InputError, match="1 to 3 pieces"):
        cut_spec(CNN, 4)
    with pytest.raises(InputError, match="1 to 3 pieces"):
        cut_spec(CNN, 0)
    bad = cut_spec(CNN, 2)[1].model_dump(mode="json")
    bad["input_shape"] = [3, 8, 8]
    with pytest.raises(InputError, match="invalid stage spec"):
        StageSpec.from_json(__import__("json").dumps(bad))
    bad = cut_spec(CNN, 2)[0].model_dump(mode="json")
    bad["layers"][0]["op"] = "exec"
    with pytest.raises(InputError, match="invalid stage spec"):
        StageSpec.from_json(__import__("json").dumps(bad))
    stages = cut_spec(CNN, 2)
    start = _state(CNN, 0)
    with pytest.raises(InputError, match="lacks"):
        split_state(stages, {k: v for k, v in start.items() if k != "0.bias"})
    with pytest.raises(InputError, match="stage 1 state has keys"):
        join_states(stages, [split_state(stages, start)[0], {}])


def test_stages_over_loopback_tcp_give_the_whole_model_bits() -> None:
    spec = CNN
    x, y = _data(spec, 64)
    start = _state(spec, 2)
    stages = cut_spec(spec, 3)
    states = split_state(stages, start)
    workers = [Stage(s, st) for s, st in zip(stages, states, strict=True)]
    links = []
    for _ in range(2):
        with socket.create_server(("127.0.0.1", 0)) as server:
            sender = socket.create_connection(server.getsockname())
            receiver, _ = server.accept()
        sender.settimeout(30)
        receiver.settimeout(30)
        links.append((sender, receiver))
    results: dict[int, StageTimes] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = run_stage(
                workers[i],
                steps=10,
                batch=spec.batch_size,
                upstream=links[i - 1][1] if i > 0 else None,
                downstream=links[i][0] if i < 2 else None,
                batches=stage_batches(spec, x, y, steps=10, seed=4) if i == 0 else None,
            )
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    # One thread count for the three stage threads, held once (see run_stage).
    with single_thread():
        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    # Frames go out whole and at once: Nagle's algorithm is off on every link.
    assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for link in links for s in link)
    for sender, receiver in links:
        sender.close()
        receiver.close()
    assert not errors
    whole = train(spec, start, x, y, steps=10, seed=4)
    assert _equal(join_states(stages, [w.state() for w in workers]), whole)
    activation = 16 * 4 * 4 * 4 * 4  # batch x channels x 4 x 4 pixels, float32
    assert results[0].bytes_sent == 10 * (24 + 16 + activation + 24 + 4 + 16 * 8)
    assert results[2].steps == 10 and results[1].bytes_sent > 0
    # What stage 0 waits for: the last stage's forward and input-gradient pass, part of its compute;
    # the middle stage's includes its own wait on the last.
    assert 0 < results[2].reply < results[2].compute
    assert results[2].reply < results[1].reply < results[1].compute + results[1].channel
    assert results[0].reply == 0
