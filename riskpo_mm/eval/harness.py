"""The pass@k harness: sample n responses per problem, grade them, aggregate honest metrics.

`evaluate` runs on an in-memory HF model (the local trainer calls it before, during and after RL)
with the same prompt encoding and sampling as the training rollouts; `evaluate_with_vllm` does the
same on a colocated vLLM engine (`generation.vllm.VLLMRollout`). `evaluate_samples` does the
grading and aggregation for responses from any engine (HF or vLLM), so both report identically.

Metrics of a group of problems (all problems, each task, each data source, each difficulty level):
pass@k for each k (unbiased estimator), avg@n (mean accuracy of all samples; the unbiased avg@k for
every k, equal to pass@1), maj@n (accuracy of the majority answer), format_rate, reward_mean,
response_length (tokens, EOS included), truncated_rate (no EOS within max_new_tokens), entropy (when
sampled log-probs are known: mean -log pi(token) of the sampled tokens at the sampling temperature, a
Monte Carlo estimate of the per-token entropy), and percentile-bootstrap CIs over problems for
pass@k, avg@n and maj@n.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from riskpo_mm.eval.passk import bootstrap_ci, majority_vote, pass_at_k_array

SCHEMA = "riskpo-mm/eval-results/1"
CI_METRICS_PREFIX = ("pass@", "avg@", "maj@")


@dataclass
class Sample:
    """One generated response: its text, token count (EOS included), whether it hit the token limit,
    and the summed log-prob of its tokens at the sampling temperature (None when the engine gives none)."""

    text: str
    length: int
    truncated: bool = False
    logprob_sum: Optional[float] = None


@dataclass
class ProblemOutcome:
    """Everything kept per problem in a results file."""

    id: str
    task: str
    source: str
    level: Optional[str]
    gold: str
    n: int
    correct: int  # samples graded correct
    accuracy: list[int]  # [n] 0/1 per sample
    reward: list[float]  # [n]
    format_ok: list[bool]  # [n]
    answers: list[Optional[str]]  # [n] extracted final answers
    reasons: list[str]  # [n] the grader's reason per sample
    length: list[int]  # [n] response tokens
    majority: Optional[str]
    majority_correct: bool
    responses: list[str] = field(default_factory=list)  # [n] (maybe truncated) texts; empty when not kept


@dataclass
class EvalResult:
    """Metrics per group ("all", "task/<t>", "source/<s>", "level/<l>"), CIs, per-problem outcomes."""

    metrics: dict[str, dict[str, float]]
    ci: dict[str, dict[str, list[float]]]
    problems: list[ProblemOutcome]
    config: dict[str, Any]
    wall_s: float = 0.0

    @property
    def overall(self) -> dict[str, float]:
        """The metrics over all problems (what report.json's before_rl / after_rl hold)."""
        return self.metrics.get("all", {})

    def by(self, kind: str) -> dict[str, dict[str, float]]:
        """Groups of one kind ("task", "source" or "level") keyed by their name."""
        prefix = kind + "/"
        return {g[len(prefix):]: m for g, m in self.metrics.items() if g.startswith(prefix)}

    def summary(self) -> str:
        """One line: problems x samples, pass@k with the CI of pass@1, maj@n, format rate, length."""
        m, ci = self.overall, self.ci.get("all", {})
        if not m:
            return "no problems evaluated"
        parts = [f"{int(m['problems'])} problems x {int(m['samples_per_problem'])} samples"]
        for key in sorted((k for k in m if k.startswith("pass@")), key=lambda k: int(k[5:])):
            text = f"{key} {m[key]:.3f}"
            if key == "pass@1" and key in ci:
                text += f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"
            parts.append(text)
        parts += [f"{k} {m[k]:.3f}" for k in m if k.startswith("maj@")]
        parts.append(f"format {m['format_rate']:.3f}")
        parts.append(f"len {m['response_length']:.1f} tok")
        if "entropy" in m:
            parts.append(f"entropy {m['entropy']:.3f}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "config": self.config, "wall_s": self.wall_s, "metrics": self.metrics,
                "ci": self.ci, "problems": [asdict(p) for p in self.problems]}

    def to_json(self, indent: Optional[int] = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<results>") -> "EvalResult":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{where}: not a riskpo-mm eval results file (field 'schema': expected {SCHEMA!r}, got {got!r})")
        return cls(metrics=d["metrics"], ci=d.get("ci", {}), problems=[ProblemOutcome(**p) for p in d.get("problems", [])],
                   config=d.get("config", {}), wall_s=float(d.get("wall_s", 0.0)))

    @classmethod
    def from_json(cls, text: str, where: str = "<results>") -> "EvalResult":
        return cls.from_dict(json.loads(text), where)

    @classmethod
    def load(cls, path: str | Path) -> "EvalResult":
        return cls.from_json(Path(path).read_text(), str(path))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def check_ks(ks: Sequence[int], n: int) -> list[int]:
    """Sorted unique ks, each an integer in [1, n]; otherwise a ValueError naming the bad values."""
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n]
    if bad or not ks:
        raise ValueError(f"k values must be integers in [1, n={n}] (pass@k needs at least k samples), got {list(ks)}")
    return sorted({int(k) for k in ks})


def record_source(record) -> str:
    """The data source of a record: meta["source"], else "unknown"."""
    src = record.meta.get("source") if isinstance(record.meta, dict) else None
    return str(src) if src not in (None, "") else "unknown"


def record_level(record) -> Optional[str]:
    """Difficulty level of a record (meta "level" or "difficulty") as a string, or None."""
    meta = record.meta if isinstance(record.meta, dict) else {}
    level = meta.get("level", meta.get("difficulty"))
    return None if level is None else str(level)


def extract_answer(record, response: str) -> Optional[str]:
    """The final answer a response gives, for majority voting, with the reward module's extraction:
    the last \\boxed{} (or "answer is ...") for answer tasks, the last fenced block for code (identical
    programs vote together)."""
    from riskpo_mm.rewards.extract import code_block, final_answer, normalise_unicode

    if record.task == "code":
        code = code_block(response)[0]
        return code.strip() if code and code.strip() else None
    answer = final_answer(response)[0]
    return normalise_unicode(answer) if answer else None


def _shorten(text: str, limit: Optional[int]) -> str:
    return text if limit is None or len(text) <= limit else text[:limit] + " [...]"


def group_metrics(
    problems: Sequence[ProblemOutcome],
    samples: Sequence[Sequence[Sample]],
    ks: Sequence[int],
    n: int,
    *,
    n_boot: int,
    seed: int,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics and bootstrap CIs of one group of problems (see the module doc)."""
    correct = np.array([p.correct for p in problems], dtype=np.int64)  # [P]
    per_problem: dict[str, np.ndarray] = {f"pass@{k}": pass_at_k_array(n, correct, k) for k in ks}  # each [P]
    per_problem[f"avg@{n}"] = correct / n
    per_problem[f"maj@{n}"] = np.array([float(p.majority_correct) for p in problems])
    m: dict[str, float] = {key: float(v.mean()) for key, v in per_problem.items()}
    ci = {key: list(bootstrap_ci(v, n_boot=n_boot, seed=seed)) for key, v in per_problem.items()}
    flat = [s for row in samples for s in row]
    m["format_rate"] = float(np.mean([f for p in problems for f in p.format_ok]))
    m["reward_mean"] = float(np.mean([r for p in problems for r in p.reward]))
    m["response_length"] = float(np.mean([s.length for s in flat]))
    m["truncated_rate"] = float(np.mean([s.truncated for s in flat]))
    if flat and all(s.logprob_sum is not None for s in flat):
        tokens = sum(s.length for s in flat)
        m["entropy"] = float(-sum(s.logprob_sum for s in flat) / max(tokens, 1))
    m["problems"] = float(len(problems))
    m["samples_per_problem"] = float(n)
    return m, ci


def evaluate_samples(
    records: Sequence,
    samples: Sequence[Sequence[Sample]],
    *,
    ks: Sequence[int],
    reward_weights=None,
    n_boot: int = 1000,
    seed: int = 0,
    keep_responses: bool = True,
    response_chars: Optional[int] = 2000,
    config: Optional[dict[str, Any]] = None,
    wall_s: float = 0.0,
) -> EvalResult:
    """Grade `samples` ([P][n] per record) with the reward router and aggregate an EvalResult."""
    from riskpo_mm.rewards import score_batch

    if len(samples) != len(records):
        raise ValueError(f"evaluate_samples: {len(samples)} sample lists for {len(records)} records")
    if not records:
        raise ValueError("evaluate_samples: no records to evaluate")
    counts = {len(row) for row in samples}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"evaluate_samples: every record needs the same number (>= 1) of samples, got {sorted(counts)}")
    n = counts.pop()
    ks = check_ks(ks, n)
    repeated = [r for r in records for _ in range(n)]
    texts = [s.text for row in samples for s in row]
    kwargs = {} if reward_weights is None else {"weights": reward_weights}
    graded = score_batch(repeated, texts, **kwargs)  # [P*n] RewardResult

    problems: list[ProblemOutcome] = []
    for p, (rec, row) in enumerate(zip(records, samples)):
        res = graded[p * n : (p + 1) * n]
        acc = [int(round(float(r.accuracy))) for r in res]
        answers = [extract_answer(rec, s.text) for s in row]
        majority, maj_ok = majority_vote(answers, acc)
        problems.append(ProblemOutcome(
            id=rec.id, task=rec.task, source=record_source(rec), level=record_level(rec), gold=rec.answer, n=n,
            correct=sum(acc), accuracy=acc, reward=[float(r.reward) for r in res],
            format_ok=[bool(r.format_ok) for r in res], answers=answers, reasons=[str(r.reason) for r in res],
            length=[s.length for s in row], majority=majority, majority_correct=maj_ok,
            responses=[_shorten(s.text, response_chars) for s in row] if keep_responses else [],
        ))

    groups: dict[str, list[int]] = defaultdict(list)
    for i, prob in enumerate(problems):
        groups["all"].append(i)
        groups[f"task/{prob.task}"].append(i)
        groups[f"source/{prob.source}"].append(i)
        if prob.level is not None:
            groups[f"level/{prob.level}"].append(i)
    metrics, cis = {}, {}
    for name, idx in groups.items():
        metrics[name], cis[name] = group_metrics([problems[i] for i in idx], [samples[i] for i in idx], ks, n,
                                                 n_boot=n_boot, seed=seed)
    cfg = {"n": n, "ks": ks, "n_boot": n_boot, "seed": seed, **(config or {})}
    return EvalResult(metrics=metrics, ci=cis, problems=problems, config=cfg, wall_s=wall_s)


@torch.no_grad()
def generate_samples_hf(
    model,
    processor,
    records: Sequence,
    *,
    family: str,
    image_config,
    n: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    top_p: float = 1.0,
    system_prompt: Optional[str] = None,
    progress: bool = False,
) -> list[list[Sample]]:
    """n samples per record with HF generate, `batch_size` prompts per call, through the training
    rollouts' own path (`generation.hf.generate_rollouts`: same prompt encoding, same sampler with
    vision tokens suppressed). Batch b is seeded with seed + b."""
    from riskpo_mm.generation.hf import generate_rollouts

    def sample(chunk: list, batch_seed: int):
        return generate_rollouts(model, processor, chunk, family=family, image_config=image_config, n=n,
                                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                 system_prompt=system_prompt, seed=batch_seed)

    return _samples_in_batches(sample, records, n=n, batch_size=batch_size, seed=seed, progress=progress)


def _samples_in_batches(sample, records: Sequence, *, n: int, batch_size: int, seed: int,
                        progress: bool) -> list[list[Sample]]:
    """`sample(chunk, seed) -> RolloutBatch` over `batch_size` records at a time (batch b seeded with
    seed + b) as n `Sample`s per record: the one sampling loop of both engines' evaluation."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out: list[list[Sample]] = []
    starts = range(0, len(records), batch_size)
    for b, start in enumerate(tqdm(starts, desc="eval", disable=not progress, dynamic_ncols=True)):
        chunk = list(records[start : start + batch_size])
        roll = sample(chunk, seed + b)
        flat = [Sample(text=t, length=len(ids), truncated=trunc, logprob_sum=float(lp.sum()))
                for t, ids, trunc, lp in zip(roll.responses, roll.response_ids, roll.truncated, roll.rollout_logprobs)]
        out += [flat[p * n : (p + 1) * n] for p in range(len(chunk))]
    return out


def evaluate(
    model,
    processor,
    records: Sequence,
    *,
    family: str,
    image_config,
    n: int,
    ks: Sequence[int],
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    reward_weights=None,
    top_p: float = 1.0,
    system_prompt: Optional[str] = None,
    n_boot: int = 1000,
    keep_responses: bool = True,
    response_chars: Optional[int] = 2000,
    progress: bool = False,
) -> EvalResult:
    """Evaluate an in-memory HF model on `records`: n samples each, graded, aggregated (module doc).

    The model is left in eval mode; sampling is seeded, so a call is reproducible on one device."""
    check_ks(ks, n)
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        samples = generate_samples_hf(model, processor, records, family=family, image_config=image_config, n=n,
                                      temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                      seed=seed, top_p=top_p, system_prompt=system_prompt, progress=progress)
    finally:
        model.train(was_training)
    config = {"engine": "hf", "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
              "family": family, "min_pixels": getattr(image_config, "min_pixels", None),
              "max_pixels": getattr(image_config, "max_pixels", None)}
    return evaluate_samples(records, samples, ks=ks, reward_weights=reward_weights, n_boot=n_boot, seed=seed,
                            keep_responses=keep_responses, response_chars=response_chars, config=config,
                            wall_s=time.perf_counter() - t0)


def generate_samples_vllm(
    rollout,
    records: Sequence,
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: Optional[int] = None,
    top_p: float = 1.0,
    system_prompt: Optional[str] = None,
    progress: bool = False,
) -> list[list[Sample]]:
    """n samples per record from a `generation.vllm.VLLMRollout` (its prompt encoding, pixel limits
    and sampler: the training rollouts' semantics). `batch_size` prompts per call (None: all in one,
    vLLM schedules them); batch b is seeded with seed + b, as `generate_samples_hf`. The log-probs are
    the sampled distribution's, so `entropy` is reported as on the HF engine."""
    def sample(chunk: list, batch_seed: int):
        return rollout.generate(chunk, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                system_prompt=system_prompt, seed=batch_seed)

    size = batch_size if batch_size is not None else max(len(records), 1)
    return _samples_in_batches(sample, records, n=n, batch_size=size, seed=seed, progress=progress)


def evaluate_with_vllm(
    rollout,
    records: Sequence,
    *,
    n: int,
    ks: Sequence[int],
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: Optional[int] = None,
    reward_weights=None,
    top_p: float = 1.0,
    system_prompt: Optional[str] = None,
    n_boot: int = 1000,
    keep_responses: bool = True,
    response_chars: Optional[int] = 2000,
    progress: bool = False,
) -> EvalResult:
    """`evaluate` on a vLLM engine (`VLLMRollout`, e.g. the local trainer's colocated one, synced to the
    policy): n samples each, graded, aggregated. Reproducible given the seed and the weights."""
    check_ks(ks, n)
    t0 = time.perf_counter()
    samples = generate_samples_vllm(rollout, records, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                    seed=seed, batch_size=batch_size, top_p=top_p, system_prompt=system_prompt,
                                    progress=progress)
    image_config = rollout.image_config
    config = {"engine": "vllm", "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
              "family": rollout.family, "min_pixels": image_config.min_pixels, "max_pixels": image_config.max_pixels}
    return evaluate_samples(records, samples, ks=ks, reward_weights=reward_weights, n_boot=n_boot, seed=seed,
                            keep_responses=keep_responses, response_chars=response_chars, config=config,
                            wall_s=time.perf_counter() - t0)
