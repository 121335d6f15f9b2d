"""Evaluation groups: naming each row's group, and the one computation of metrics per group (`metric_frame`).

Shared by training (per-epoch validation, the oracle's group balance, `--weighting auto`) and the
report (debias.report.metrics adds intervals and tests); it needs neither, so imports flow one way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from debias.errors import UserError


def _defined_when(metric: Callable, label: int) -> Callable:
    """`metric`, or NaN for a group without any row of true class `label`.

    fairlearn returns 0.0 for the true-positive rate of a group with no positives; in groups
    crossed with the label that 0.0 would read as a measurement, so it becomes 'undefined'.
    """

    def wrapped(y_true, y_pred):
        if not np.any(np.asarray(y_true) == label):
            return float("nan")
        return metric(y_true, y_pred)

    return wrapped


def correct(y_true, y_pred) -> int:
    """Rows predicted right: with `count`, the binomial outcome an exact interval needs."""
    return int(np.sum(np.asarray(y_true) == np.asarray(y_pred)))


# Every metric per group that debias reports, in the fit's history and in the report alike.
GROUP_METRICS: dict[str, Callable] = {
    "count": count,
    "correct": correct,
    "accuracy": accuracy_score,
    "true_positive_rate": _defined_when(true_positive_rate, 1),
    "false_positive_rate": _defined_when(false_positive_rate, 0),
    "selection_rate": selection_rate,
}


def metric_frame(y_true, y_pred, groups: pd.Series | pd.DataFrame) -> MetricFrame:
    """fairlearn's MetricFrame of GROUP_METRICS: overall and per group (a name per row, or a frame of attribute
    columns whose combinations are the groups). The one place debias computes a metric per group."""
    if not isinstance(groups, pd.DataFrame):
        groups = pd.Series(np.asarray(groups).astype(str), name="group")
    return MetricFrame(
        metrics=GROUP_METRICS, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), sensitive_features=groups
    )


def column_groups(attributes: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Group names from attribute columns alone (no label), e.g. 'Male=1' or 'Male=1|Young=0'."""
    parts = [f"{col}=" + attributes[col].astype(str) for col in columns]
    name = parts[0]
    for part in parts[1:]:
        name = name + "|" + part
    return name.rename("group").reset_index(drop=True)


def blank_cells(values: pd.Series) -> np.ndarray:
    """Which cells hold no group value: missing (None, NaN) or empty text."""
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def require_group_values(attributes_by_split: dict[str, pd.DataFrame], columns: list[str], source: str) -> None:
    """UserError when a group column has blank (missing or empty) cells in some split.

    A row without a group value cannot be evaluated by group (fairlearn refuses missing values);
    blanks are not made a group of their own, since an invented group could become the worst
    group and decide the headline. The message says how to fill them.
    """
    for split, attributes in attributes_by_split.items():
        for column in dict.fromkeys(columns):
            if column not in attributes.columns:
                continue
            values = attributes[column]
            blank = int(blank_cells(values).sum())
            if blank:
                raise UserError(
                    f"the group column `{column}` is empty on {blank} of {len(values)} rows of the {split} split of "
                    f"{source}. Every row needs a group value: fill the blanks with a value of their own (such as "
                    "`unknown`, then evaluated as a group like the others) or remove those rows."
                )


def group_labels(attributes: pd.DataFrame, group_columns: list[str], labels: np.ndarray) -> pd.Series:
    """One group name per row: the group attributes crossed with the label, e.g. 'Male=1|label=0'.

    Crossing with the label gives the groups the field reports (CelebA's four Blond_Hair x Male
    cells); for face detection with a `subgroup` column the label adds nothing new but keeps
    the same form.
    """
    frame = attributes[list(group_columns)].reset_index(drop=True).copy()
    frame["label"] = np.asarray(labels)
    return column_groups(frame, [*group_columns, "label"])


def accuracy_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series) -> dict:
    """Overall accuracy, worst-group accuracy, the per-group accuracy and count, and the selection rate
    (of `metric_frame`, the numbers the report shows).

    `selection_rate` (the share of rows predicted 1) tells a constant predictor apart: 0 or 1.
    """
    frame = metric_frame(y_true, y_pred, groups)
    by_group = frame.by_group
    return {
        "accuracy": float(frame.overall["accuracy"]),
        "worst_group_accuracy": float(by_group["accuracy"].min()),
        "worst_group": str(by_group["accuracy"].idxmin()),
        "selection_rate": float(frame.overall["selection_rate"]),
        "groups": {
            str(g): {"accuracy": float(r["accuracy"]), "count": int(r["count"])} for g, r in by_group.iterrows()
        },
    }


def cell_weights(weights: np.ndarray, attributes: pd.DataFrame, group_columns: list[str], labels: np.ndarray) -> dict:
    """Per --groups cell of the training split (group columns crossed with the label): rows and mean weight.

        cell_weights(w, train.attributes, ["Male"], train.labels)
        # {"Male=0|label=0": {"rows": 612, "mean_weight": 0.93}, "Male=1|label=1": {"rows": 9, "mean_weight": 0.41}, ...}

    The rows are kept with the mean because weights average 1, so whenever they are not uniform
    some cell is under 1x: only beside its share of the rows does a mean weight say whether a
    rare cell, the one that needs the weights, is drawn less often than uniform sampling would.
    """
    frame = pd.DataFrame(
        {"cell": group_labels(attributes, group_columns, labels), "weight": np.asarray(weights, dtype=float)}
    )
    grouped = frame.groupby("cell")["weight"]
    return {
        str(cell): {"rows": int(rows), "mean_weight": float(mean)}
        for cell, rows, mean in zip(grouped.size().index, grouped.size(), grouped.mean())
    }
