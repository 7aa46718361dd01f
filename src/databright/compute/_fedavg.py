"""Federated averaging (McMahan et al., 2017, "Communication-Efficient Learning of
Deep Networks from Decentralized Data"): the round's new model is the mean of the
tasks' models weighted by their shard sizes.

The coordinator aggregates itself, deterministically: tasks in index order,
sums in float64, one rounding back to each tensor's dtype at the end, so every
coordinator that holds the same results computes the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from databright.errors import InputError

__all__ = ["fedavg"]


def fedavg(states: Sequence[dict[str, Tensor]], weights: Sequence[int]) -> dict[str, Tensor]:
    if not states or len(states) != len(weights) or any(w <= 0 for w in weights):
        raise InputError("federated averaging needs one positive weight per state")
    names = sorted(states[0])
    total = float(sum(weights))
    out: dict[str, Tensor] = {}
    for name in names:
        first = states[0][name]
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for state, weight in zip(states, weights):
            tensor = state.get(name)
            if tensor is None or tensor.shape != first.shape or sorted(state) != names:
                raise InputError(f"task results disagree on tensor {name!r}")
            acc += tensor.to(torch.float64) * (weight / total)
        out[name] = acc.to(first.dtype)
    return out
