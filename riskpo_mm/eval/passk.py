"""Sample-based accuracy estimators: unbiased pass@k, avg@n, majority vote, bootstrap CIs.

pass@k is the probability that at least one of k samples drawn without replacement from the n
generated ones is correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021). It is computed in the
product form 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms a binomial coefficient and so
stays exact for large n. avg@n (mean accuracy of all n samples) equals pass@1 and is the unbiased
avg@k for every k <= n.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Optional, Sequence

import numpy as np


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"pass_at_k: {name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct among `n` samples.

    Raises ValueError unless n >= 1, 0 <= c <= n and 1 <= k <= n (k > n has no unbiased estimate:
    generate at least k samples)."""
    n, c, k = _check_int("n", n), _check_int("c", c), _check_int("k", k)
    if n < 1:
        raise ValueError(f"pass_at_k: n (samples) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c (correct samples) must lie in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must lie in [1, n={n}] (k > n has no unbiased estimate; sample more), got {k}")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def pass_at_k_array(n: int, correct: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """pass_at_k(n, c, k) for each entry of `correct` ([P] counts) -> [P] float64."""
    c = np.asarray(correct)
    if c.size == 0:
        return np.zeros(0)
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"pass_at_k_array: correct must be a 1-d array of integer counts, got shape {c.shape} {c.dtype}")
    table = np.array([pass_at_k(n, j, k) for j in range(n + 1)])  # [n+1] every possible count
    if c.min() < 0 or c.max() > n:
        raise ValueError(f"pass_at_k_array: counts must lie in [0, n={n}], got range [{c.min()}, {c.max()}]")
    return table[c.astype(np.int64)]


_NORMALISE = [
    (re.compile(r"\\(left|right|displaystyle|!|,|;|:)"), ""),
    (re.compile(r"\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}"), r"\1\2"),
    (re.compile(r"\^\s*\{?\\circ\}?|°|\\degree"), ""),
    (re.compile(r"\\?[dt]frac"), r"\\frac"),
    (re.compile(r"\s+"), ""),
]


def normalize_answer(answer: Optional[str]) -> Optional[str]:
    """A canonical string for voting: layout LaTeX, degree marks and spaces removed, trailing '.' cut.
    Only groups surface variants of one answer; correctness always comes from the grader."""
    if answer is None:
        return None
    s = answer.strip()
    for pattern, repl in _NORMALISE:
        s = pattern.sub(repl, s)
    s = s.rstrip(".").replace("−", "-")
    if len(s) >= 2 and s[0] == "(" and s[-1] == ")" and s[1:-1].isalpha() and len(s) == 3:
        s = s[1]  # "(B)" -> "B"
    return s or None


def majority_vote(answers: Sequence[Optional[str]], correct: Sequence[bool | int]) -> tuple[Optional[str], bool]:
    """Majority answer over the samples of one problem and whether it is correct.

    answers: extracted answers (None = no answer; None never wins); correct: the grader's verdict per
    sample. Ties go to the answer seen first. The verdict of the winner is that of its first sample
    (samples with the same normalised answer are graded alike). No answer at all -> (None, False)."""
    if len(answers) != len(correct):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(correct)} verdicts")
    keys = [normalize_answer(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, False
    best = max(counts.values())
    winner = next(k for k in keys if k is not None and counts[k] == best)
    return winner, bool(correct[keys.index(winner)])


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-problem `values` ([P]), resampling problems.

    `statistic` maps resampled values [n_boot, P] to [n_boot] (default: the mean over problems).
    Seeded, so a result file is reproducible. Fewer than 2 problems -> (point, point)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap_ci: confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"bootstrap_ci: n_boot must be >= 1, got {n_boot}")
    v = np.asarray(values, dtype=np.float64)
    stat = statistic or (lambda x: x.mean(axis=-1))
    if v.size == 0:
        return float("nan"), float("nan")
    point = float(stat(v[None])[0])
    if v.size < 2:
        return point, point
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))  # [n_boot, P]
    stats = stat(v[idx])  # [n_boot]
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)
