"""debias.groups on hand-made rows: cell weights, the selection rate that flags constant predictors, one metric frame."""

import numpy as np
import pandas as pd
import pytest

from debias.groups import accuracy_by_group, cell_weights, group_labels


def test_cell_weights_are_rows_and_mean_weight_per_group_cell():
    attributes = pd.DataFrame({"Male": [0, 0, 0, 1, 1, 1], "Young": [1, 1, 1, 1, 1, 1]})
    labels = np.array([0, 0, 1, 0, 0, 1])
    weights = np.array([1.0, 1.5, 2.0, 0.5, 0.5, 0.5])
    cells = cell_weights(weights, attributes, ["Male"], labels)
    assert cells == {
        "Male=0|label=0": {"rows": 2, "mean_weight": pytest.approx(1.25)},
        "Male=0|label=1": {"rows": 1, "mean_weight": pytest.approx(2.0)},
        "Male=1|label=0": {"rows": 2, "mean_weight": pytest.approx(0.5)},
        "Male=1|label=1": {"rows": 1, "mean_weight": pytest.approx(0.5)},
    }


def test_accuracy_by_group_reports_the_selection_rate():
    result = accuracy_by_group(np.array([1, 0, 1, 0]), np.array([0, 0, 0, 0]), pd.Series(["a", "a", "b", "b"]))
    assert result["selection_rate"] == 0.0 and result["accuracy"] == 0.5
    assert accuracy_by_group(np.array([1, 0]), np.array([1, 0]), pd.Series(["a", "b"]))["selection_rate"] == 0.5


def test_the_fit_and_the_report_read_the_same_group_metrics():
    """The fit's per-epoch figures (accuracy_by_group) and the report's (model_metrics) are one computation."""
    from debias.fit.auto import worst_class_accuracy
    from debias.report.metrics import model_metrics

    rng = np.random.default_rng(0)
    attributes = pd.DataFrame({"Male": rng.integers(0, 2, 300)})
    labels = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, labels, 1 - labels)
    fit = accuracy_by_group(labels, pred, group_labels(attributes, ["Male"], labels))
    report = model_metrics(labels, pred, attributes, ["Male"])
    for key in ("accuracy", "worst_group_accuracy", "worst_group", "selection_rate"):
        assert fit[key] == report[key], key
    assert fit["groups"] == {g: {"accuracy": r["accuracy"], "count": r["count"]} for g, r in report["groups"].items()}
    by_class = [np.mean(pred[labels == c] == c) for c in (0, 1)]
    assert worst_class_accuracy(labels, pred) == pytest.approx(min(by_class))
