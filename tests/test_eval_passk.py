"""The pass@k estimator, majority vote and bootstrap CIs against their definitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from riskpo_mm.eval import bootstrap_ci, majority_vote, normalize_answer, pass_at_k, pass_at_k_array
from riskpo_mm.eval.risk import eval_bundle_scores, tail_measures


def enumerated_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_exact_enumeration_over_all_k_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(enumerated_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_edge_cases():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0  # k = n: any correct sample is drawn
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c / n


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 500) overflows a float; the product form stays exact.
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5, abs=1e-12)
    assert pass_at_k(2000, 10, 1) == pytest.approx(10 / 2000, abs=1e-15)
    expected = 1 - math.comb(1990, 100) / math.comb(2000, 100)
    assert pass_at_k(2000, 10, 100) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "n, c, k, message",
    [
        (4, 1, 5, "k must lie in \\[1, n=4\\]"),
        (4, 1, 0, "k must lie in"),
        (4, 5, 1, "c \\(correct samples\\) must lie in \\[0, n=4\\]"),
        (4, -1, 1, "c \\(correct samples\\)"),
        (0, 0, 1, "n \\(samples\\) must be >= 1"),
        (4.0, 1, 1, "n must be an integer"),
        (4, 1, True, "k must be an integer"),
        (4, "1", 1, "c must be an integer"),
    ],
)
def test_pass_at_k_rejects_bad_arguments_clearly(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_pass_at_k_array_matches_the_scalar_estimator():
    counts = np.array([0, 1, 3, 8, 5])
    got = pass_at_k_array(8, counts, 4)
    assert np.allclose(got, [pass_at_k(8, int(c), 4) for c in counts])
    with pytest.raises(ValueError, match="counts must lie in \\[0, n=8\\]"):
        pass_at_k_array(8, np.array([9]), 1)


def test_majority_vote_groups_surface_variants_and_ignores_missing_answers():
    answers = ["3\\sqrt{2}", None, "3 \\sqrt{2}", "4", None, None]
    assert majority_vote(answers, [1, 0, 1, 0, 0, 0]) == ("3\\sqrt{2}", True)
    assert majority_vote(["40^\\circ", "40°", "35"], [0, 0, 1]) == ("40", False)
    assert majority_vote([None, None], [0, 0]) == (None, False)
    assert majority_vote(["A", "B"], [0, 1]) == ("A", False)  # tie: the first seen wins
    assert normalize_answer("(B)") == "B"
    assert normalize_answer("\\dfrac{1}{2}.") == "\\frac{1}{2}"


def test_bootstrap_ci_contains_the_point_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    values = rng.binomial(1, 0.3, size=40).astype(float)
    lo, hi = bootstrap_ci(values, n_boot=500, seed=7)
    assert lo <= values.mean() <= hi
    assert lo < hi
    assert (lo, hi) == bootstrap_ci(values, n_boot=500, seed=7)
    assert bootstrap_ci([0.5], seed=0) == (0.5, 0.5)
    wide = bootstrap_ci(values[:10], n_boot=500, seed=7)
    assert wide[1] - wide[0] > hi - lo  # fewer problems, wider interval


def test_eval_bundle_scores_sum_sample_j_over_each_bundle():
    acc = np.array([[1, 0], [1, 1], [0, 0], [1, 0], [0, 1]])  # 5 problems x 2 samples
    scores = eval_bundle_scores(acc, 2)  # the fifth problem is a partial bundle, dropped
    assert scores.tolist() == [[2, 1], [1, 0]]
    m = tail_measures(scores, alpha=0.25)
    assert m["cvar"] == pytest.approx(0.0)  # lowest quarter of [0, 1, 1, 2]
    assert m["mean"] == pytest.approx(1.0)
