"""An estimator defined outside the package (one file): the sign of each response's centred reward.

Used by the tests as a user would: ``algorithm.estimator: "tests/extensions/centered_sign.py:CenteredSign"``
with ``algorithm.options: {scale: 0.5}``.
"""

from dataclasses import dataclass

import torch


@dataclass
class Options:
    scale: float = 1.0

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"scale: need a number > 0, got {self.scale!r}")


class CenteredSign:
    name = "centered_sign"
    Options = Options
    keep = None

    def __init__(self, options: Options, seed: int = 0) -> None:
        self.options = options
        self.calls = 0
        self.metrics: dict[str, float] = {}

    @torch.no_grad()
    def advantages(self, rewards, groups=None, mask=None):
        mask = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask
        mean = torch.where(mask, rewards, 0.0).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
        adv = self.options.scale * torch.sign(rewards - mean)  # [P, n]
        self.calls += 1
        self.metrics = {"calls": float(self.calls), "positive_frac": float((adv > 0).double().mean())}
        return torch.where(mask, adv, 0.0)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])
