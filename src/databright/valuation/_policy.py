"""The reward policy: from a proposal's measured value to shares.

Each dataset publishes its policy in its metadata (``reward_policy``); the
evaluator applies it and posts the result with the value on-chain, where the
contract caps it by the dataset's ``max_reward_per_proposal``::

    new      = items in the batch that are not already accepted (by CID)
    discount = half_life_items / (half_life_items + accepted_items)
    quality  = clip(1 + gain / gain_scale, 0, 2)
    shares   = min(cap, floor(new * base_reward_per_item * discount * quality))
    shares   = 0 when gain < min_gain

``gain`` is the mean leave-one-out gain in validation accuracy of the dataset's
best model (0.01 = one percentage point). Returns diminish twice over: the gain
of a batch shrinks as the dataset grows (the model already knows most of what
it would teach), and the discount halves a batch's reward by the time the
dataset has grown by ``half_life_items``. The discount is what makes the
ordering reliable — a measured gain of a few tenths of a point is within the
estimate's noise — while ``quality`` pays useful batches up to twice the base
and harmful ones nothing. The value posted on-chain is the gain in parts per
million of accuracy (``value_ppm``), signed.
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

    half_life_items: int = Field(default=200, gt=0, description="dataset growth that halves a batch's reward")
    gain_scale: float = Field(default=0.05, gt=0, description="gain that doubles (or, negative, zeroes) a reward")
    min_gain: float = Field(default=-0.005, description="batches measured below this gain earn nothing")

    def discount(self, accepted_items: int) -> float:
        return self.half_life_items / (self.half_life_items + max(accepted_items, 0))

    def quality(self, gain: float) -> float:
        return min(max(1.0 + gain / self.gain_scale, 0.0), 2.0)

    def shares(self, gain: float, *, new_items: int, accepted_items: int, base_reward: int, cap: int) -> int:
        if not math.isfinite(gain) or gain < self.min_gain or new_items <= 0:
            return 0
        raw = new_items * base_reward * self.discount(accepted_items) * self.quality(gain)
        return min(cap, math.floor(raw))
