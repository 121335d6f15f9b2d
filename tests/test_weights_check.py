"""The fit's check of its weights against uniform sampling on validation: a loss is called only beyond noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debias.weights_check import compare_with_uniform


def _probs(labels, wrong_rows):
    probs = labels.astype(float)
    probs[wrong_rows] = 1 - probs[wrong_rows]
    return probs


def test_a_model_that_loses_accuracy_beyond_noise_is_called_out_and_an_equal_one_is_not():
    labels = np.repeat([0, 1], 500)
    uniform = _probs(labels, np.arange(0, 1000, 20))  # 50 wrong, spread over both classes
    worse = _probs(labels, np.arange(0, 1000, 5))  # 200 wrong, the same 50 among them
    check = compare_with_uniform(labels, uniform, worse)
    assert check["accuracy"]["uniform"] == 0.95 and check["accuracy"]["weighted"] == 0.8
    assert check["loses"] == ["accuracy", "worst_class_accuracy"]
    assert compare_with_uniform(labels, uniform, uniform)["loses"] == []
    # better is never a loss
    assert compare_with_uniform(labels, worse, uniform)["loses"] == []


def test_a_small_difference_is_noise():
    labels = np.repeat([0, 1], 100)
    uniform = _probs(labels, np.array([0, 1, 2, 150]))
    other = _probs(labels, np.array([0, 1, 2, 3, 4, 150]))  # two more wrong of 200: p = 0.5
    check = compare_with_uniform(labels, uniform, other)
    assert check["accuracy"]["difference"] < 0 and check["accuracy"]["p_value"] > 0.05
    assert check["loses"] == []


def test_a_loss_confined_to_one_validation_group_is_found_with_val_groups_only():
    labels = np.tile([0, 1], 600)
    attributes = pd.DataFrame({"Male": np.repeat([0, 1], [1100, 100])})
    uniform = labels.astype(float)
    other = _probs(labels, np.flatnonzero((attributes["Male"].to_numpy() == 1) & (labels == 1))[:20])
    without = compare_with_uniform(labels, uniform, other)
    assert "worst_group_accuracy" not in without
    with_groups = compare_with_uniform(labels, uniform, other, attributes, ["Male"])
    assert with_groups["worst_group_accuracy"]["weighted_worst"] == "Male=1|label=1"
    assert with_groups["worst_group_accuracy"]["weighted"] == 0.6
    assert "worst_group_accuracy" in with_groups["loses"]
