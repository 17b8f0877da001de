"""Evaluation: the unbiased pass@k estimator, the sampling harness, results files and run comparison.

`pass_at_k(n, c, k)` is the public estimator; `evaluate(model, processor, records, ...)` the harness
(`riskpo_mm.eval.harness`); `riskpo-mm eval` and `riskpo-mm compare` are `riskpo_mm.eval.cli` and
`riskpo_mm.eval.compare`. The harness is imported lazily so `from riskpo_mm.eval import pass_at_k`
stays light.
"""

from riskpo_mm.eval.passk import bootstrap_ci, majority_vote, normalize_answer, pass_at_k, pass_at_k_array

__all__ = ["pass_at_k", "pass_at_k_array", "bootstrap_ci", "majority_vote", "normalize_answer",
           "EvalResult", "ProblemOutcome", "Sample", "evaluate", "evaluate_samples"]


def __getattr__(name: str):
    if name in {"EvalResult", "ProblemOutcome", "Sample", "evaluate", "evaluate_samples"}:
        from riskpo_mm.eval import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'riskpo_mm.eval' has no attribute {name!r}")
