"""The reward policy: from a proposal's accuracy gain to shares.

Each dataset publishes its policy in its metadata (``reward_policy``); the
evaluator applies it and posts the result with the value on-chain, where the
contract caps it by the dataset's ``max_reward_per_proposal``:

    shares = min(cap, floor(shares_per_point * 100 * gain))   if gain > min_gain
    shares = 0                                                 otherwise

``gain`` is the mean leave-one-out gain in validation accuracy (0.01 = one
percentage point). The gain of the same batch shrinks as the dataset grows (the
best model already knows what the batch would teach it), so early, useful data
earns more than late data, and harmful data earns nothing. The value posted
on-chain is the gain in parts per million of accuracy (``value_ppm``), signed.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RewardPolicy", "value_ppm"]


def value_ppm(gain: float) -> int:
    """The on-chain value of a gain: parts per million of accuracy, rounded."""
    return int(round(gain * 1_000_000))


class RewardPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    shares_per_point: int = Field(default=100, ge=0, description="shares per percentage point of accuracy gained")
    min_gain: float = Field(default=0.0, ge=0.0, description="gains at or below this earn nothing")

    def shares(self, gain: float, cap: int) -> int:
        if not math.isfinite(gain) or gain <= self.min_gain:
            return 0
        return min(cap, math.floor(self.shares_per_point * 100 * gain))
