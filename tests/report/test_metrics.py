"""Group metrics on a tiny hand-made prediction table equal hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import GROUPS, LABELS, UNIFORM

from debias.groups import group_labels
from debias.report.metrics import accuracy_interval, model_metrics, parity_differences, training_weight_table


@pytest.fixture(scope="module")
def uniform():
    return model_metrics(np.array(LABELS), np.array(UNIFORM), pd.DataFrame({"g": GROUPS}), ["g"])


def test_group_names_cross_the_group_columns_with_the_label():
    names = group_labels(pd.DataFrame({"g": ["A", "B"], "h": [0, 1]}), ["g", "h"], np.array([1, 0]))
    assert list(names) == ["g=A|h=0|label=1", "g=B|h=1|label=0"]


def test_per_group_accuracy_worst_group_and_gap_match_hand_counts(uniform):
    assert uniform["accuracy"] == pytest.approx(7 / 10)
    acc = {g: r["accuracy"] for g, r in uniform["groups"].items()}
    assert acc == pytest.approx({"g=A|label=0": 1.0, "g=A|label=1": 0.5, "g=B|label=0": 1 / 3, "g=B|label=1": 1.0})
    assert {g: r["count"] for g, r in uniform["groups"].items()} == {
        "g=A|label=0": 2,
        "g=A|label=1": 2,
        "g=B|label=0": 3,
        "g=B|label=1": 3,
    }
    assert uniform["worst_group"] == "g=B|label=0"
    assert uniform["worst_group_accuracy"] == pytest.approx(1 / 3)
    assert uniform["best_group_accuracy"] == pytest.approx(1.0)
    assert uniform["accuracy_gap"] == pytest.approx(2 / 3)


def test_rates_per_group_column_match_hand_counts(uniform):
    a, b = uniform["by_column"]["g"]["g=A"], uniform["by_column"]["g"]["g=B"]
    assert (a["accuracy"], a["true_positive_rate"], a["false_positive_rate"], a["selection_rate"]) == pytest.approx(
        (3 / 4, 1 / 2, 0.0, 1 / 4)
    )
    assert (b["accuracy"], b["true_positive_rate"], b["false_positive_rate"], b["selection_rate"]) == pytest.approx(
        (4 / 6, 1.0, 2 / 3, 5 / 6)
    )


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


def test_intervals_contain_the_point_estimate(uniform):
    for result in (uniform["groups"], uniform["by_column"]["g"]):
        for row in result.values():
            low, high = row["accuracy_ci"]
            assert low <= row["accuracy"] <= high and low < high
    low, high = uniform["accuracy_ci"]
    assert low <= uniform["accuracy"] <= high and low < high


def test_interval_at_zero_and_all_correct_is_the_exact_one_not_a_point():
    # Clopper-Pearson at k = 0 has the closed form [0, 1 - (alpha/2)^(1/n)]: for 0/8, 1 - 0.025^(1/8) = 0.3694.
    assert accuracy_interval(0, 8) == pytest.approx((0.0, 0.36942), abs=1e-5)
    assert accuracy_interval(8, 8) == pytest.approx((0.63058, 1.0), abs=1e-5)
    # 1/2: the exact interval is [0.0126, 0.9874] (Clopper and Pearson's table)
    assert accuracy_interval(1, 2) == pytest.approx((0.01258, 0.98742), abs=1e-5)
    assert all(math.isnan(x) for x in accuracy_interval(0, 0))


def test_every_group_interval_has_width_even_at_0_and_100_percent():
    # 8 positives all wrong, 8 negatives all right: the percentile bootstrap gave [0, 0] and [1, 1]
    rows = _group_rows("A", 8, 0, 8)
    result = _metrics(rows)
    assert result["groups"]["g=A|label=1"]["accuracy_ci"] == pytest.approx([0.0, 0.36942], abs=1e-5)
    assert result["groups"]["g=A|label=0"]["accuracy_ci"] == pytest.approx([0.63058, 1.0], abs=1e-5)
    assert result["worst_group_accuracy_ci"] == result["groups"]["g=A|label=1"]["accuracy_ci"]
    assert result["groups"]["g=A|label=1"]["correct"] == 0 and result["groups"]["g=A|label=0"]["correct"] == 8


def _group_rows(group: str, n: int, right_pos: int, right_neg: int) -> pd.DataFrame:
    """n positives and n negatives of `group`, `right_pos` and `right_neg` of them predicted right."""
    labels = [1] * n + [0] * n
    preds = [1] * right_pos + [0] * (n - right_pos) + [0] * right_neg + [1] * (n - right_neg)
    return pd.DataFrame({"label": labels, "pred": preds, "g": group})


def _metrics(rows: pd.DataFrame) -> dict:
    return model_metrics(rows["label"].to_numpy(), rows["pred"].to_numpy(), rows[["g"]], ["g"])


def test_groups_carry_their_attribute_values_as_fields(uniform):
    assert uniform["groups"]["g=B|label=0"]["key"] == {"g": "B", "label": 0}
    assert uniform["by_column"]["g"]["g=A"]["key"] == {"g": "A"}
    numeric = model_metrics(np.array([1, 0]), np.array([1, 1]), pd.DataFrame({"Male": [1, 0]}), ["Male"])
    assert numeric["groups"]["Male=0|label=0"]["key"] == {"Male": 0, "label": 0}
    assert numeric["selection_rate"] == 1.0


def test_parity_is_undefined_when_a_group_holds_one_class():
    # face detection: every face group is all faces, the non-faces all non-faces
    result = parity_differences(
        np.array([1, 1, 0, 0]), np.array([1, 1, 0, 1]), pd.Series(["face", "face", "nonface", "nonface"])
    )
    assert result["demographic_parity_difference"] is None and result["equalized_odds_difference"] is None
    assert "face, nonface hold a single class" in result["note"]


def test_training_weight_table_shares_and_means():
    table = training_weight_table(np.array([0.5, 0.5, 2.0, 1.0]), pd.Series(["a", "a", "b", "c"]))
    assert table.loc["a", "mean_weight"] == pytest.approx(0.5)
    assert table.loc["b", "share_of_rows"] == pytest.approx(0.25)
    assert table.loc["b", "share_of_draws"] == pytest.approx(0.5)
    assert table["share_of_draws"].sum() == pytest.approx(1.0)
