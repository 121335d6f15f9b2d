"""Paired tests on hand-worked cases: McNemar's exact test and the worst-group permutation test."""

import numpy as np
import pandas as pd
import pytest

from debias.paired import compare_predictions, format_p, mcnemar, significance_note, worst_group_test


def test_mcnemar_counts_the_discordant_pairs_and_tests_them_against_a_coin():
    base = np.array([1, 1, 0, 0, 0, 1, 0, 1], bool)
    other = np.array([1, 0, 1, 1, 1, 1, 0, 1], bool)
    result = mcnemar(base, other)
    # fixed: rows 2, 3, 4; broken: row 1. Two-sided binomial p of 3 of 4 heads: 2 * (4 + 1) / 16 = 0.625
    assert (result["fixed"], result["broken"]) == (3, 1)
    assert result["difference"] == pytest.approx(2 / 8)
    assert result["p_value"] == pytest.approx(0.625)
    assert mcnemar(base, base)["p_value"] == 1.0


def test_eight_of_eight_fixed_is_p_2_over_256_not_zero():
    # A bootstrap of these pairs sees the same change in every resample (p = 0); the exact test does not.
    base, other = np.zeros(8, bool), np.ones(8, bool)
    assert mcnemar(base, other)["p_value"] == pytest.approx(2 / 256)
    result = worst_group_test(base, other, ["small"] * 8)
    assert result["difference"] == 1.0 and result["exact"]
    assert result["p_value"] == pytest.approx(2 / 256)


def test_worst_group_test_on_one_group_is_mcnemar():
    rng = np.random.default_rng(3)
    base, other = rng.random(40) < 0.6, rng.random(40) < 0.75
    assert worst_group_test(base, other, ["g"] * 40)["p_value"] == pytest.approx(mcnemar(base, other)["p_value"])


def test_worst_group_test_hand_worked_on_two_groups():
    # A: 2 images both models get right. B: 4 images; base gets none, other gets 3 (3 discordant).
    # Observed: min(1, 3/4) - min(1, 0) = 0.75. Under the null X ~ Bin(3, 1/2) of B's discordant rows
    # go to `other`: X = 3 gives +0.75, X = 2 +0.25, X = 1 -0.25, X = 0 -0.75; P(T >= 0.75) = 1/8, p = 2/8.
    base = np.array([1, 1, 0, 0, 0, 0], bool)
    other = np.array([1, 1, 1, 1, 1, 0], bool)
    result = worst_group_test(base, other, ["A", "A", "B", "B", "B", "B"])
    assert result["difference"] == pytest.approx(0.75)
    assert result["p_value"] == pytest.approx(0.25)
    assert result["exact"] and result["resamples"] == 0


def test_worst_group_test_draws_when_there_are_too_many_outcomes_and_agrees_with_the_exact_p():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b"], 400)
    base, other = rng.random(800) < 0.7, rng.random(800) < 0.75
    exact = worst_group_test(base, other, groups, resamples=999)
    assert exact["exact"]  # 2 groups of ~120 discordant rows: ~15,000 outcomes, enumerated
    drawn = worst_group_test(np.tile(base, 3), np.tile(other, 3), np.tile(groups, 3), resamples=2000, seed=1)
    assert not drawn["exact"] and drawn["resamples"] == 2000
    assert 0 < drawn["p_value"] <= 1
    assert worst_group_test(base, base, groups)["p_value"] == 1.0


def test_compare_predictions_tests_each_group():
    base = pd.DataFrame({"label": [1, 1, 0, 0], "pred": [0, 0, 0, 1]})
    other = pd.DataFrame({"label": [1, 1, 0, 0], "pred": [1, 1, 0, 1]})
    result = compare_predictions(base, other, pd.Series(["x", "x", "y", "y"]))
    assert result["groups"]["x"]["fixed"] == 2 and result["groups"]["y"]["fixed"] == 0
    assert result["groups"]["x"]["p_value"] == pytest.approx(0.5)
    assert result["accuracy"]["difference"] == pytest.approx(0.5)


def test_p_values_are_quoted_with_their_verdict():
    assert format_p(0.4123) == "p = 0.41"
    assert format_p(0.0078125) == "p = 0.0078"
    assert format_p(0.0002) == "p < 0.001"
    assert significance_note(0.41) == "not significant (p = 0.41)"
    assert significance_note(0.01) == "significant (p = 0.01)"
