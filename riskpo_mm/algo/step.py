"""One RL step's advantages, the same on both engines: rewards -> advantages, keep mask, metrics.

`AdvantageStep` is what the local engine and the Ray controller both call, once per rollout batch
over every prompt of the step (all ranks), in dataloader order:

1. reward shaping: DAPO's soft overlong penalty (``overlong_buffer``) and a clip range, if set;
2. the estimator by name or file spec (`riskpo_mm.algo.build_estimator`) on the shaped rewards
   ``[P, n]``;
3. the keep mask: the estimator's ``keep`` (DAPO drops prompts whose rewards all tie: dynamic
   sampling); None keeps every response;
4. bundle-score risk measures (``bundle/...``) for every estimator, so runs compare on the same
   lower tail: a RiskPO estimator with the run's settings watches the rewards of non-RiskPO runs;
5. metrics with one set of names: ``reward/<mean|task>``, ``accuracy/...``, ``format/...``,
   ``response_length/{mean,max}``, ``response/truncated_fraction``, ``<estimator>/...``,
   ``bundle/...``, ``advantage/zero_fraction``.

Its state (estimator and monitor: trackers, pairing RNG) goes into every checkpoint.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from riskpo_mm.algo.config import RiskPOConfig
from riskpo_mm.algo.registry import build_estimator, is_file_spec, resolve_estimator, takes_riskpo_options


@dataclass
class StepResult:
    advantages: Tensor  # [P, n], 0 for responses left out
    keep: Tensor  # [P, n] bool: responses in the loss
    rewards: Tensor  # [P, n] after shaping
    metrics: dict[str, float]


def overlong_penalty(lengths: Tensor, max_new_tokens: int, buffer: int, factor: float) -> Tensor:
    """DAPO's soft overlong punishment: 0 up to max - buffer tokens, then linear down to -factor at max.

    lengths: [P, n] response tokens -> [P, n] penalties (<= 0).
    """
    start = max_new_tokens - buffer
    over = (lengths.to(torch.float64) - start).clamp(min=0) / max(buffer, 1)
    return -factor * over.clamp(max=1.0)


class AdvantageStep:
    """Estimator, risk monitor and reward shaping of a run (module doc)."""

    def __init__(
        self,
        estimator: str,
        riskpo: Optional[RiskPOConfig] = None,
        seed: int = 0,
        *,
        options: Any = None,
        clip_range: Optional[tuple[float, float]] = None,
        overlong_buffer: Optional[int] = None,
        overlong_factor: float = 1.0,
        max_new_tokens: Optional[int] = None,
    ) -> None:
        if overlong_buffer is not None and max_new_tokens is None:
            raise ValueError("AdvantageStep: overlong_buffer needs max_new_tokens")
        self.riskpo = riskpo if riskpo is not None else RiskPOConfig()
        cls = resolve_estimator(estimator)
        self.name = getattr(cls, "name", cls.__name__) if is_file_spec(estimator) else estimator  # metric prefix
        if takes_riskpo_options(estimator):
            if options:
                raise ValueError(f"algorithm.options: estimator {estimator!r} takes its options from algorithm.riskpo")
            options = self.riskpo
        self.estimator = build_estimator(estimator, options, seed=seed)
        self.monitor = self.estimator if options is self.riskpo else build_estimator("riskpo", self.riskpo, seed=seed)
        self.clip_range = clip_range
        self.overlong_buffer, self.overlong_factor, self.max_new_tokens = overlong_buffer, overlong_factor, max_new_tokens

    def shape(self, rewards: Tensor, lengths: Optional[Tensor]) -> Tensor:
        """Rewards [P, n] after the overlong penalty and the clip range."""
        out = rewards.to(torch.float64)
        if self.overlong_buffer is not None:
            if lengths is None:
                raise ValueError("AdvantageStep: the overlong penalty needs response lengths")
            out = out + overlong_penalty(lengths, self.max_new_tokens, self.overlong_buffer, self.overlong_factor)
        if self.clip_range is not None:
            out = out.clamp(min=self.clip_range[0], max=self.clip_range[1])
        return out

    @torch.no_grad()
    def __call__(
        self,
        rewards: Tensor,
        tasks: Sequence[str],
        *,
        lengths: Optional[Tensor] = None,
        accuracy: Optional[Tensor] = None,
        format_ok: Optional[Tensor] = None,
        truncated: Optional[Tensor] = None,
    ) -> StepResult:
        """rewards, lengths, accuracy, format_ok, truncated: [P, n]; tasks: P labels -> `StepResult`."""
        if rewards.dim() != 2 or len(tasks) != rewards.shape[0]:
            raise ValueError(f"AdvantageStep: rewards must be [P, n] with one task per prompt, got "
                             f"{tuple(rewards.shape)} and {len(tasks)} tasks")
        shaped = self.shape(rewards, lengths)
        adv = self.estimator.advantages(shaped, groups=list(tasks))  # [P, n]
        if self.monitor is not self.estimator:
            self.monitor.advantages(shaped, groups=list(tasks))
        keep_prompt = self.estimator.keep  # [P] or None
        keep = torch.ones_like(shaped, dtype=torch.bool)
        if keep_prompt is not None:
            keep &= keep_prompt.to(torch.bool)[:, None]
        adv = torch.where(keep, adv, torch.zeros_like(adv))
        metrics = self._metrics(shaped, tasks, adv, lengths, accuracy, format_ok, truncated)
        return StepResult(adv, keep, shaped, metrics)

    def _metrics(self, rewards, tasks, adv, lengths, accuracy, format_ok, truncated) -> dict[str, float]:
        m: dict[str, float] = {}
        rows: dict[str, list[int]] = defaultdict(list)
        for p, task in enumerate(tasks):
            rows[str(task)].append(p)
        for name, values in (("reward", rewards), ("accuracy", accuracy), ("format", format_ok)):
            if values is None:
                continue
            values = values.to(torch.float64)
            m[f"{name}/mean"] = float(values.mean())
            for task, idx in sorted(rows.items()):
                m[f"{name}/{task}"] = float(values[idx].mean())
        if lengths is not None:
            m["response_length/mean"] = float(lengths.to(torch.float64).mean())
            m["response_length/max"] = float(lengths.max())
        if truncated is not None:
            m["response/truncated_fraction"] = float(truncated.to(torch.float64).mean())
        m.update({f"{self.name}/{k}": float(v) for k, v in self.estimator.metrics.items()})
        m.update({f"bundle/{k.split('/', 1)[1]}": float(v) for k, v in self.monitor.metrics.items()
                  if k.startswith("bundle_score/")})
        m["advantage/zero_fraction"] = float((adv == 0).to(torch.float64).mean())
        return m

    def state_dict(self) -> dict[str, Any]:
        state = {"estimator": self.estimator.state_dict()}
        if self.monitor is not self.estimator:
            state["risk_monitor"] = self.monitor.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state["estimator"])
        if self.monitor is not self.estimator and "risk_monitor" in state:
            self.monitor.load_state_dict(state["risk_monitor"])
