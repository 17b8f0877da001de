"""What a run config asks of generation and its grading: reward weights, code-sandbox limits, and
the keywords of a run's evaluation (`eval.harness.evaluate` / `evaluate_with_vllm`)."""

from __future__ import annotations

from riskpo_mm.config import RewardConfig


def reward_weights(reward_cfg: RewardConfig):
    """The router's RewardWeights with the config's per-task weights and reward form."""
    from riskpo_mm.rewards import RewardWeights

    return RewardWeights.from_dict({
        "binary_form": reward_cfg.binary_form,
        "tasks": {task: w.model_dump() for task, w in reward_cfg.weights.items()},
    })


def eval_settings(cfg) -> dict:
    """The harness keywords of a run's evaluation (`eval.*`, the rollout batch, reward weights, system
    prompt): the same for the local engine's and the Ray driver's evaluations."""
    ev = cfg.eval
    return dict(n=ev.n, ks=ev.k, temperature=ev.temperature, max_new_tokens=ev.max_new_tokens or cfg.rollout.max_new_tokens,
                batch_size=cfg.rollout.prompts_per_step, seed=cfg.seed, reward_weights=reward_weights(cfg.reward),
                system_prompt=cfg.data.system_prompt)


def code_limits(reward_cfg: RewardConfig):
    """The sandbox limits of the config's code settings (the Ray reward function builds the same)."""
    from riskpo_mm.rewards.sandbox import SandboxLimits

    return SandboxLimits(timeout_s=reward_cfg.code_timeout_s, memory_mb=reward_cfg.code_memory_mb,
                         isolation=reward_cfg.code_isolation)
