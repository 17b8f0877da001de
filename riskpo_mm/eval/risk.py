"""Bundle scores of evaluation outcomes: the lower tail RiskPO optimises, measured on held-out data.

Consecutive problems form bundles of B (a trailing partial bundle is dropped); paper j of a bundle
takes sample j of each of its problems, and its score is the number of those samples graded correct
(docs/method.md section 3, with positional pairing). CVaR/RVaR/MVaR come from the estimator's own
`risk_measures`, so training logs and evaluation agree on the definitions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from riskpo_mm.algo.estimator import risk_measures


def eval_bundle_scores(accuracy: Sequence[Sequence[int]] | np.ndarray, bundle_size: int) -> np.ndarray:
    """accuracy: [P, n] 0/1 per problem and sample -> paper scores [P // B, n] (sum over each bundle)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim != 2:
        raise ValueError(f"eval_bundle_scores: accuracy must be [problems, samples], got shape {acc.shape}")
    if isinstance(bundle_size, bool) or not isinstance(bundle_size, int) or bundle_size < 1:
        raise ValueError(f"eval_bundle_scores: bundle_size must be an integer >= 1, got {bundle_size!r}")
    nb = acc.shape[0] // bundle_size
    return acc[: nb * bundle_size].reshape(nb, bundle_size, acc.shape[1]).sum(1)  # [nb, n]


def tail_measures(scores: np.ndarray, alpha: float = 0.2, beta: float = 0.8, w_mix: float = 1.5) -> dict[str, float]:
    """CVaR_alpha, RVaR_alpha:beta, MVaR and mean of all paper scores (empty -> NaN everywhere)."""
    flat = torch.as_tensor(np.asarray(scores, dtype=np.float64).reshape(-1))
    if flat.numel() == 0:
        return {"cvar": float("nan"), "rvar": float("nan"), "mvar": float("nan"), "mean": float("nan")}
    _, _, cvar, rvar, mvar, mean = risk_measures(flat, alpha, beta, w_mix).tolist()
    return {"cvar": cvar, "rvar": rvar, "mvar": mvar, "mean": mean}


def problems_bundle_measures(problems: Sequence, bundle_size: int = 5, alpha: float = 0.2, beta: float = 0.8,
                             w_mix: float = 1.5) -> dict[str, float]:
    """tail_measures of the bundle scores of EvalResult.problems (dicts or ProblemOutcome)."""
    rows = [p["accuracy"] if isinstance(p, dict) else p.accuracy for p in problems]
    if not rows:
        return tail_measures(np.zeros(0), alpha, beta, w_mix)
    return tail_measures(eval_bundle_scores(rows, bundle_size), alpha, beta, w_mix)
