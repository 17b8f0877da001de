"""OpenRLHF reward function: ``--reward.remote_url <path to this file>``.

OpenRLHF 0.11.2 (``SingleTurnAgentExecutor``) loads ``reward_func`` from a
``.py`` path and calls ``reward_func(queries, prompts, labels)`` on a worker
thread (``asyncio.to_thread``), one sample at a time. ``query`` is the decoded
prompt + response (special tokens kept); ``label`` carries the record fields,
as a dict or a JSON string (a plain non-JSON string is taken as a math gold
answer). Returns ``{"rewards", "scores", "extra_logs"}`` with tensors of shape
``[B]``; ``extra_logs`` holds accuracy and format so they are logged apart
from the mixed reward. Never raises.

A label may carry the run's reward settings under ``"reward"``:
``{"binary_form": "01"|"pm1", "tasks": {task: {"accuracy": w, "format": w}}, "task_weights": {task: scale},
"code": {"timeout_s", "memory_mb", "isolation", "workers"}}`` (``riskpo_mm.engine.ray_data`` writes
them from the YAML config). ``code.workers`` bounds how many code answers this process grades at
once, as ``reward.workers`` does on the local engine (OpenRLHF calls this function from one
thread per sample). Without it, the router's default
weights apply and ``RISKPO_REWARD_BINARY_FORM=pm1`` switches to the +-1 form.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from typing import Any

import torch

from riskpo_mm.rewards import RewardResult, RewardWeights, router

logger = logging.getLogger(__name__)
_ASSISTANT_MARKERS = ("<|im_start|>assistant\n", "<|im_start|>assistant")
_END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "</s>")


_code_slots: dict[int, threading.BoundedSemaphore] = {}
_code_slots_lock = threading.Lock()


def _code_slot(workers: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore that lets ``workers`` code answers be graded at once."""
    with _code_slots_lock:
        return _code_slots.setdefault(workers, threading.BoundedSemaphore(workers))


def _code_limits(spec: dict | None):
    """Sandbox limits from a label's ``reward.code`` spec (None: the grader's defaults)."""
    code = (spec or {}).get("code")
    if not code:
        return None
    from riskpo_mm.rewards.sandbox import SandboxLimits

    return SandboxLimits(timeout_s=float(code["timeout_s"]), memory_mb=int(code["memory_mb"]),
                         isolation=str(code.get("isolation", "auto")))


def _weights(spec: dict | None) -> tuple[RewardWeights, dict[str, float]]:
    """Reward weights and per-task reward scales from a label's ``"reward"`` spec (or the defaults)."""
    if not spec:
        return RewardWeights(binary_form=os.environ.get("RISKPO_REWARD_BINARY_FORM", "01")), {}
    weights = RewardWeights.from_dict({k: spec[k] for k in ("binary_form", "tasks") if k in spec})
    return weights, {str(k): float(v) for k, v in (spec.get("task_weights") or {}).items()}


def response_from_query(query: str, prompt: str) -> str:
    """Strip the prompt from ``query`` (prompt + response) and trailing end-of-turn tokens.

    The prompt prefix is removed verbatim when it matches; otherwise (image
    tokens expanded, prompt truncated) the text after the last assistant turn
    marker is taken.
    """
    if prompt and query.startswith(prompt):
        resp = query[len(prompt):]
    else:
        for marker in _ASSISTANT_MARKERS:
            idx = query.rfind(marker)
            if idx >= 0:
                resp = query[idx + len(marker):]
                break
        else:
            resp = query
    stripped = True
    while stripped:
        stripped = False
        resp = resp.rstrip()
        for end in _END_MARKERS:
            if resp.endswith(end):
                resp, stripped = resp[: -len(end)], True
    return resp


def label_to_record(label: Any) -> Any:
    """A label as record fields: a dict, a JSON object string, or a bare math answer."""
    if isinstance(label, dict):
        return label
    if isinstance(label, str):
        try:
            obj = json.loads(label)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return obj
    return {"task": "math", "answer": label}


def reward_func(queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
    """OpenRLHF entry point: mixed rewards plus accuracy/format logs, shape [B] each."""
    n = len(queries)
    results: list[RewardResult]
    try:
        if not (len(prompts) == len(labels) == n):
            raise ValueError(f"reward_func: {n} queries, {len(prompts)} prompts, {len(labels)} labels")
        responses = [response_from_query(q, p) for q, p in zip(queries, prompts)]
        records = [dict(label_to_record(lab)) for lab in labels]
        specs = [rec.pop("reward", None) for rec in records]
        spec = next((s for s in specs if s), None)
        if spec and spec.get("functions"):
            from riskpo_mm.rewards.user_functions import register_functions

            register_functions(spec["functions"])  # imported once per process
        weights, scale = _weights(spec)
        limits = _code_limits(spec)
        workers = int(((spec or {}).get("code") or {}).get("workers", 4))
        if any(router._runs_code(r) for r in records):
            with _code_slot(workers):
                results = router.score_batch(records, responses, weights=weights, workers=workers, code_limits=limits)
        else:
            results = router.score_batch(records, responses, weights=weights, code_limits=limits)
        results = [dataclasses.replace(r, reward=r.reward * scale.get(r.task, 1.0)) for r in results]
    except Exception as e:
        reason = f"error: reward_func: {type(e).__name__}: {e}"
        results = [router.report_error("?", reason) for _ in range(n)]
    rewards = torch.tensor([r.reward for r in results], dtype=torch.float32)  # [B]
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {
            "accuracy": torch.tensor([r.accuracy for r in results], dtype=torch.float32),  # [B]
            "format_ok": torch.tensor([float(r.format_ok) for r in results], dtype=torch.float32),  # [B]
            "reward_error": torch.tensor([float(r.reason.startswith("error")) for r in results]),  # [B]
        },
    }
