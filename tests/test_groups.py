"""debias.groups on hand-made rows: cell weights and the selection rate that flags constant predictors."""

import numpy as np
import pandas as pd
import pytest

from debias.groups import accuracy_by_group, cell_weights


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
