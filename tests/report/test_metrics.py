"""Group metrics on a tiny hand-made prediction table equal hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import GROUPS, LABELS, UNIFORM
from sklearn.metrics import accuracy_score

from debias.groups import group_labels
from debias.report.metrics import accuracy_interval, model_metrics, parity_differences, training_weight_table


@pytest.fixture(scope="module")
def uniform():
    return model_metrics(np.array(LABELS), np.array(UNIFORM), pd.DataFrame({"g": GROUPS}), ["g"], n_boot=500)


def test_group_names_cross_the_group_columns_with_the_label():
    names = group_labels(pd.DataFrame({"g": ["A", "B"], "h": [0, 1]}), ["g", "h"], np.array([1, 0]))
    assert list(names) == ["g=A|h=0|label=1", "g=B|h=1|label=0"]


def test_per_group_accuracy_worst_group_and_gap_match_hand_counts(uniform):
    assert uniform["accuracy"] == pytest.approx(7 / 10)
    acc = {g: r["accuracy"] for g, r in uniform["groups"].items()}
    assert acc == pytest.approx({"g=A|label=0": 1.0, "g=A|label=1": 0.5, "g=B|label=0": 1 / 3, "g=B|label=1": 1.0})
    assert {g: r["count"] for g, r in uniform["groups"].items()} == {"g=A|label=0": 2, "g=A|label=1": 2, "g=B|label=0": 3, "g=B|label=1": 3}
    assert uniform["worst_group"] == "g=B|label=0"
    assert uniform["worst_group_accuracy"] == pytest.approx(1 / 3)
    assert uniform["best_group_accuracy"] == pytest.approx(1.0)
    assert uniform["accuracy_gap"] == pytest.approx(2 / 3)


def test_rates_per_group_column_match_hand_counts(uniform):
    a, b = uniform["by_column"]["g"]["g=A"], uniform["by_column"]["g"]["g=B"]
    assert (a["accuracy"], a["true_positive_rate"], a["false_positive_rate"], a["selection_rate"]) == pytest.approx((3 / 4, 1 / 2, 0.0, 1 / 4))
    assert (b["accuracy"], b["true_positive_rate"], b["false_positive_rate"], b["selection_rate"]) == pytest.approx((4 / 6, 1.0, 2 / 3, 5 / 6))


def test_rates_a_group_cannot_define_are_nan_not_zero(uniform):
    negatives_only = uniform["groups"]["g=A|label=0"]
    assert math.isnan(negatives_only["true_positive_rate"])
    assert negatives_only["false_positive_rate"] == 0.0
    assert math.isnan(uniform["groups"]["g=B|label=1"]["false_positive_rate"])


def test_parity_differences_match_hand_counts(uniform):
    parity = uniform["parity"]["g"]
    assert parity["demographic_parity_difference"] == pytest.approx(5 / 6 - 1 / 4)
    assert parity["equalized_odds_difference"] == pytest.approx(max(1.0 - 0.5, 2 / 3 - 0.0))
    assert parity["note"] is None


def test_equalized_odds_is_undefined_when_a_group_holds_one_class():
    result = parity_differences(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1]), pd.Series(["face", "face", "nonface", "nonface"]))
    assert result["equalized_odds_difference"] is None
    assert "face" in result["note"] and "single class" in result["note"]
    assert result["demographic_parity_difference"] == pytest.approx(0.0)


def test_intervals_contain_the_point_estimate(uniform):
    for result in (uniform["groups"], uniform["by_column"]["g"]):
        for row in result.values():
            low, high = row["accuracy_ci"]
            assert low <= row["accuracy"] <= high
    low, high = uniform["accuracy_ci"]
    assert low <= uniform["accuracy"] <= high and low < high


def test_interval_is_the_percentile_bootstrap_of_resampled_rows():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, 1 - y_true)
    resampled = []
    for _ in range(2000):
        index = rng.integers(0, 200, 200)
        resampled.append(accuracy_score(y_true[index], y_pred[index]))
    expected = np.quantile(resampled, [0.025, 0.975])
    got = accuracy_interval(accuracy_score(y_true, y_pred), 200, "x", n_boot=2000)
    assert got == pytest.approx(tuple(expected), abs=0.015)


def test_intervals_are_seeded_and_independent_of_other_groups():
    first = accuracy_interval(0.7, 50, "g=A", seed=3)
    assert accuracy_interval(0.7, 50, "g=A", seed=3) == first
    assert accuracy_interval(1.0, 50, "g=A") == (1.0, 1.0)


def test_training_weight_table_shares_and_means():
    table = training_weight_table(np.array([0.5, 0.5, 2.0, 1.0]), pd.Series(["a", "a", "b", "c"]))
    assert table.loc["a", "mean_weight"] == pytest.approx(0.5)
    assert table.loc["b", "share_of_rows"] == pytest.approx(0.25)
    assert table.loc["b", "share_of_draws"] == pytest.approx(0.5)
    assert table["share_of_draws"].sum() == pytest.approx(1.0)
