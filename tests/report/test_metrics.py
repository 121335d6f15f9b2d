"""Group metrics on a tiny hand-made prediction table equal hand-computed values."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GROUPS, LABELS, UNIFORM, predictions_table
from sklearn.metrics import accuracy_score

from debias.groups import group_labels
from debias.report.build import evaluate_models
from debias.report.metrics import accuracy_interval, model_metrics, parity_differences, training_weight_table
from debias.report.run import Run


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


def test_equalized_odds_is_undefined_when_a_group_holds_one_class():
    result = parity_differences(
        np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1]), pd.Series(["face", "face", "nonface", "nonface"])
    )
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


def _group_rows(group: str, n: int, right_pos: int, right_neg: int) -> pd.DataFrame:
    """n positives and n negatives of `group`, `right_pos` and `right_neg` of them predicted right."""
    labels = [1] * n + [0] * n
    preds = [1] * right_pos + [0] * (n - right_pos) + [0] * right_neg + [1] * (n - right_neg)
    return pd.DataFrame({"label": labels, "pred": preds, "g": group})


def _metrics(rows: pd.DataFrame) -> dict:
    return model_metrics(rows["label"].to_numpy(), rows["pred"].to_numpy(), rows[["g"]], ["g"], n_boot=200)


def test_intervals_are_seeded_and_independent_of_other_groups():
    first = accuracy_interval(0.7, 50, "g=A", seed=3)
    assert accuracy_interval(0.7, 50, "g=A", seed=3) == first
    assert accuracy_interval(1.0, 50, "g=A") == (1.0, 1.0)
    # Group B's intervals with B alone, with group A in the table (A sorts before B, so a shared
    # random stream or one chosen by position would move B's draws), and in another row order.
    # 1000 rows per cell make the interval fine-grained enough that another stream gives another interval.
    b = _group_rows("B", 1000, 700, 750)
    a = _group_rows("A", 1000, 600, 900)
    alone, together = _metrics(b), _metrics(pd.concat([a, b], ignore_index=True))
    shuffled = _metrics(pd.concat([b, a], ignore_index=True).sample(frac=1.0, random_state=0))
    for cell in ("g=B|label=1", "g=B|label=0"):
        low, high = alone["groups"][cell]["accuracy_ci"]
        assert low < high
        assert together["groups"][cell]["accuracy_ci"] == shuffled["groups"][cell]["accuracy_ci"] == [low, high], cell
    assert together["by_column"]["g"]["g=B"]["accuracy_ci"] == alone["by_column"]["g"]["g=B"]["accuracy_ci"]
    # another stream gives another interval here, so the equalities above can fail
    other_seed = model_metrics(b["label"].to_numpy(), b["pred"].to_numpy(), b[["g"]], ["g"], n_boot=200, seed=1)
    assert other_seed["groups"]["g=B|label=1"]["accuracy_ci"] != alone["groups"]["g=B|label=1"]["accuracy_ci"]


def test_intervals_are_independent_of_other_models():
    # dbvae is evaluated after uniform, so a stream shared across models would move its draws
    rows = _group_rows("B", 1000, 700, 750)
    labels, preds = rows["label"].tolist(), rows["pred"].tolist()

    def evaluate(models):
        run = Run(
            Path("run"), {"dataset": {"group_columns": ["g"]}}, predictions_table(models, labels, ["B"] * len(labels))
        )
        return evaluate_models(run, n_boot=200)

    alone, both = evaluate({"dbvae": preds}), evaluate({"uniform": [1 - p for p in preds], "dbvae": preds})
    assert list(both) == ["uniform", "dbvae"]
    for cell in ("g=B|label=1", "g=B|label=0"):
        assert both["dbvae"]["groups"][cell]["accuracy_ci"] == alone["dbvae"]["groups"][cell]["accuracy_ci"]
    assert both["dbvae"]["accuracy_ci"] == alone["dbvae"]["accuracy_ci"]


def test_training_weight_table_shares_and_means():
    table = training_weight_table(np.array([0.5, 0.5, 2.0, 1.0]), pd.Series(["a", "a", "b", "c"]))
    assert table.loc["a", "mean_weight"] == pytest.approx(0.5)
    assert table.loc["b", "share_of_rows"] == pytest.approx(0.25)
    assert table.loc["b", "share_of_draws"] == pytest.approx(0.5)
    assert table["share_of_draws"].sum() == pytest.approx(1.0)
