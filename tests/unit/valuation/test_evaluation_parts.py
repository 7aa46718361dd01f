"""Leave-one-out gain, the reward policy and the quality signals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from databright.ml import ModelSpec, Normalization, train
from databright.valuation import RewardPolicy, loo_gain, quality_signals, value_ppm


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, ModelSpec]:
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    x = data.data[order].astype(np.float32)
    y = data.target[order].astype(np.int64)
    spec = ModelSpec(
        kind="mlp", input="table", features=tuple(f"p{i}" for i in range(64)),
        classes=tuple(str(i) for i in range(10)), batch_size=64, pretrain_steps=150, finetune_steps=60, seeds=3,
        normalize=Normalization(mean=tuple(map(float, x.mean(0))), std=tuple(float(s) or 1.0 for s in x.std(0))),
    )
    return x, y, spec


def test_gain_is_deterministic_paired_and_signs_flipped_labels(digits: tuple[np.ndarray, np.ndarray, ModelSpec]) -> None:
    x, y, spec = digits
    accepted, validation = (x[:200], y[:200]), (x[1400:], y[1400:])
    checkpoint = train(spec, None, *accepted, steps=spec.pretrain_steps, seed=0)
    clean = (x[300:400], y[300:400])
    flipped = (x[400:500], (y[400:500] + 1) % 10)
    first, computed = loo_gain(spec, checkpoint, accepted, clean, validation, [0, 1, 2])
    again, _ = loo_gain(spec, checkpoint, accepted, clean, validation, [0, 1, 2])
    assert first == again
    assert set(computed) == {0, 1, 2}
    cached, computed_now = loo_gain(
        spec, checkpoint, accepted, flipped, validation, [0, 1, 2], baseline=lambda seed: computed[seed]
    )
    assert computed_now == {}
    assert [s.without_batch for s in cached.scores] == [s.without_batch for s in first.scores]
    assert cached.mean < 0 < first.mean
    assert first.std >= 0


def test_policy_diminishes_with_size_and_pays_quality() -> None:
    policy = RewardPolicy(half_life_items=200, gain_scale=0.05, min_gain=-0.005)
    early = policy.shares(0.01, new_items=100, accepted_items=100, base_reward=10, cap=10_000)
    late = policy.shares(0.01, new_items=100, accepted_items=900, base_reward=10, cap=10_000)
    assert early > late > 0
    assert policy.shares(0.01, new_items=100, accepted_items=200, base_reward=10, cap=10_000) == 600
    assert policy.shares(0.5, new_items=100, accepted_items=0, base_reward=10, cap=10_000) == 2_000  # quality <= 2
    assert policy.shares(-0.006, new_items=100, accepted_items=0, base_reward=10, cap=10_000) == 0
    assert policy.shares(0.02, new_items=100, accepted_items=0, base_reward=10, cap=50) == 50
    assert policy.shares(0.02, new_items=0, accepted_items=0, base_reward=10, cap=50) == 0
    assert policy.shares(float("nan"), new_items=10, accepted_items=0, base_reward=10, cap=50) == 0
    assert value_ppm(-0.0123456) == -12346


def test_signals_flag_duplicates_near_duplicates_and_mislabels(
    digits: tuple[np.ndarray, np.ndarray, ModelSpec],
) -> None:
    x, y, _ = digits
    ax, ay = x[:400], y[:400]
    cids = [f"a{i}" for i in range(400)]
    batch_x = np.concatenate([x[:3], x[3:4] + 0.01, x[500:540], x[540:580]])
    batch_y = np.concatenate([y[:3], y[3:4], y[500:540], (y[540:580] + 4) % 10])
    batch_cids = ["a0", "a1", "a2", "copy-of-a3"] + [f"b{i}" for i in range(80)]
    signals = quality_signals(ax, ay, cids, batch_x, batch_y, batch_cids, x[1400:], y[1400:])
    assert signals.exact_duplicates == (0, 1, 2)
    assert [n[:2] for n in signals.near_duplicates] == [(3, 3)]
    flagged = set(signals.suspected_mislabels)
    assert len(flagged & set(range(44, 84))) >= 30
    assert len(flagged & set(range(4, 44))) <= 3
    assert signals.knn_negative >= 30
    assert len(signals.knn_values) == 84
    assert signals.to_json()["exact_duplicates"] == [0, 1, 2]
