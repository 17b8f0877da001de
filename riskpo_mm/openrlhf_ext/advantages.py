"""RiskPO / group advantages for OpenRLHF ``Experience`` batches (no Ray or vLLM import).

OpenRLHF hands the controller a rollout whose samples are grouped n per prompt but with the
prompts in vLLM *completion* order, and split into micro-batches (``Experience.index`` keeps each
sample's rollout position). Bundles must not depend on which engine finished first, so:

1. samples go back to rollout order, each run of n samples must share one prompt uid (from the
   label dict ``{"uid", "task", ...}``, a dict or its JSON string);
2. prompts are put in dataloader order (the order the samples generator dispatched them,
   recorded in a `PromptOrder`), or, for prompts not recorded, by uid;
3. rewards ``[P, n]`` in that order go through `riskpo_mm.algo.AdvantageStep` (the function the
   local engine calls too) once for the whole rollout batch;
4. each response's advantage is broadcast over its action mask.

`compute_riskpo_advantages` is what both engines call; `RiskPOAdvantageMixin` puts it in place
of ``compute_advantages_and_returns`` on any OpenRLHF experience maker.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402


def parse_label(label: Any) -> dict[str, Any]:
    """The label dict of a sample: a mapping, or its JSON string. Must carry a ``uid``."""
    if isinstance(label, Mapping):
        parsed = dict(label)
    elif isinstance(label, (str, bytes)):
        try:
            parsed = json.loads(label)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"sample label is not JSON ({err.msg} at char {err.pos}): {str(label)[:120]!r}; RiskPO needs a label "
                'dict like {"uid": ..., "task": ..., "answer": ...} (see riskpo_mm.openrlhf_ext.data)'
            ) from None
        if not isinstance(parsed, dict):
            raise ValueError(f"sample label JSON must be an object, got {type(parsed).__name__}: {str(label)[:120]!r}")
    else:
        raise ValueError(f"sample label must be a dict or a JSON string, got {type(label).__name__}: {label!r:.120}")
    if "uid" not in parsed:
        raise ValueError(f"sample label has no 'uid' (keys: {sorted(parsed)}); RiskPO groups samples by prompt uid")
    return parsed


class PromptOrder:
    """Dataloader order of the prompts of the current rollout: each uid's dispatch positions."""

    def __init__(self) -> None:
        self._positions: dict[str, list[int]] = defaultdict(list)
        self._next = 0

    def reset(self) -> None:
        self._positions.clear()
        self._next = 0

    def record(self, labels: Sequence[Any]) -> None:
        """Append prompts in the order they were drawn from the dataloader."""
        for label in labels:
            self._positions[str(parse_label(label)["uid"])].append(self._next)
            self._next += 1

    def position(self, uid: str, occurrence: int) -> Optional[int]:
        """Dispatch position of the ``occurrence``-th copy of ``uid``; None if not recorded."""
        positions = self._positions.get(uid, [])
        return positions[occurrence] if occurrence < len(positions) else None

    def __len__(self) -> int:
        return self._next


def group_rollout(
    labels: Sequence[Any], n: int, order: Optional[PromptOrder] = None
) -> tuple[torch.Tensor, list[str], list[str]]:
    """Group samples (in rollout order) n per prompt and sort the prompts deterministically.

    Returns ``(perm, uids, tasks)``: ``perm: [P, n]`` rollout positions, row p = the p-th prompt in
    dataloader order (recorded prompts first, by dispatch position; others by uid), columns in
    the order the prompt's samples arrived; ``uids`` and ``tasks`` per row.
    """
    if n < 1 or len(labels) % n:
        raise ValueError(f"rollout has {len(labels)} samples, not a multiple of n_samples_per_prompt={n}")
    parsed = [parse_label(label) for label in labels]
    keys: list[tuple] = []
    rows: list[tuple[str, str]] = []
    seen: dict[str, int] = defaultdict(int)
    for p in range(len(parsed) // n):
        run = parsed[p * n : (p + 1) * n]
        uid = str(run[0]["uid"])
        if any(str(s["uid"]) != uid for s in run):
            raise ValueError(
                f"rollout positions {p * n}..{(p + 1) * n - 1} should be the {n} samples of one prompt, got uids "
                f"{[str(s['uid']) for s in run]}"
            )
        occurrence = seen[uid]
        seen[uid] += 1
        position = order.position(uid, occurrence) if order is not None else None
        keys.append((0, position, "", 0, p) if position is not None else (1, 0, uid, occurrence, p))
        rows.append((uid, str(run[0].get("task", "default"))))
    ordered = [k[-1] for k in sorted(keys)]
    perm = torch.tensor([[p * n + j for j in range(n)] for p in ordered], dtype=torch.long).reshape(-1, n)
    return perm, [rows[p][0] for p in ordered], [rows[p][1] for p in ordered]


def _rollout_positions(experiences: Sequence[Experience]) -> list[int]:
    """Each sample's rollout position (``Experience.index``), or consecutive positions if absent."""
    if all(e.index is not None for e in experiences):
        return [i for e in experiences for i in e.index]
    return list(range(sum(len(e.rewards) for e in experiences)))


@torch.no_grad()
def compute_riskpo_advantages(
    experiences: list[Experience],
    step: Any,
    args: Any,
    order: Optional[PromptOrder] = None,
    kl_coef: float = 0.0,
) -> tuple[list[Experience], dict[str, float]]:
    """Advantages and returns for a rollout batch with the engine-neutral `riskpo_mm.algo.AdvantageStep`.

    ``args``: OpenRLHF's hierarchized args (``rollout.n_samples_per_prompt``). Sets
    ``advantages``/``returns: [B, A]`` (the response advantage on every action token), drops the
    action tokens of responses the step leaves out (DAPO's keep mask, as the local engine does),
    sets ``info["return"]`` and ``info["group_reward_std"]``, clears ``kl``. Reward shaping (clip
    range, overlong penalty) is the step's, not OpenRLHF's, so it is the same on both engines.
    Returns the experiences and the step's metrics.
    """
    if kl_coef > 0 and not args.algo.kl.use_loss:
        raise ValueError(
            "--algo.kl.init_coef > 0 without --algo.kl.use_loss puts a per-token KL into the reward, which bundle "
            "advantages do not use; pass --algo.kl.use_loss for a KL term with RiskPO, or --algo.kl.init_coef 0"
        )
    n = args.rollout.n_samples_per_prompt
    positions = torch.tensor(_rollout_positions(experiences), dtype=torch.long)  # [N]
    flat_labels = [label for e in experiences for label in e.labels]
    if len(flat_labels) != len(positions):
        raise ValueError(f"{len(flat_labels)} labels for {len(positions)} samples: every sample needs its label")
    labels_ro: list[Any] = [None] * len(positions)
    for pos, label in zip(positions.tolist(), flat_labels):
        labels_ro[pos] = label

    def rollout_order(values: list[torch.Tensor]) -> torch.Tensor:
        out = torch.empty(len(positions), dtype=torch.float64)
        out[positions] = torch.cat([v.reshape(-1).to(torch.float64) for v in values])
        return out

    def info(key: str) -> Optional[torch.Tensor]:
        if not all(key in e.info for e in experiences):
            return None
        return rollout_order([e.info[key] for e in experiences])

    rewards_ro = rollout_order([e.rewards for e in experiences])  # [N]
    lengths_ro = rollout_order([e.action_mask.sum(-1) for e in experiences])
    truncated_ro = rollout_order([e.truncated for e in experiences]) if all(
        e.truncated is not None for e in experiences) else None

    perm, _uids, tasks = group_rollout(labels_ro, n, order)  # [P, n] rollout positions in dataloader order
    fields = {"lengths": lengths_ro, "accuracy": info("accuracy"), "format_ok": info("format_ok"),
              "truncated": truncated_ro}
    result = step(rewards_ro[perm], tasks, **{k: None if v is None else v[perm] for k, v in fields.items()})

    flat = perm.reshape(-1)
    adv_ro = torch.empty(len(positions), dtype=torch.float32)
    adv_ro[flat] = result.advantages.reshape(-1).float()
    keep_ro = torch.empty(len(positions), dtype=torch.bool)
    keep_ro[flat] = result.keep.reshape(-1)
    shaped_ro = torch.empty(len(positions), dtype=torch.float32)
    shaped_ro[flat] = result.rewards.reshape(-1).float()
    std_ro = torch.zeros(len(positions), dtype=torch.float32)
    if n > 1:
        std_ro[flat] = result.rewards.std(-1, keepdim=True).expand(-1, n).reshape(-1).float()

    splits = positions.split([len(e.rewards) for e in experiences])
    for e, idx in zip(experiences, splits):
        e.action_mask = e.action_mask & keep_ro[idx][:, None].to(e.action_mask.device)
        mask = e.action_mask.to(torch.float32)  # [b, A]
        e.advantages = adv_ro[idx][:, None] * mask  # [b, A]
        e.returns = e.advantages.clone()
        e.rewards = shaped_ro[idx].to(e.rewards.dtype)
        e.info["return"] = shaped_ro[idx]
        if n > 1:
            e.info["group_reward_std"] = std_ro[idx]
        e.kl = None
    return experiences, result.metrics


class RiskPOAdvantageMixin:
    """Put before an OpenRLHF experience maker class: with ``self.step`` set (a riskpo_mm
    `AdvantageStep`), advantages come from `compute_riskpo_advantages`; with ``step = None``
    OpenRLHF's own estimators run unchanged."""

    step: Any = None
    prompt_order: Optional[PromptOrder] = None
    step_metrics: dict[str, float] = {}

    def compute_advantages_and_returns(self, experiences: list[Experience]) -> list[Experience]:
        if self.step is None:
            return super().compute_advantages_and_returns(experiences)
        kl_ctl = getattr(self, "kl_ctl", None)
        experiences, self.step_metrics = compute_riskpo_advantages(
            experiences,
            self.step,
            self.strategy.args,
            self.prompt_order,
            kl_coef=float(kl_ctl.value) if kl_ctl is not None else 0.0,
        )
        return experiences
