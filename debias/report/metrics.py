"""Group metrics with fairlearn's MetricFrame: overall, per group, worst group, parity differences.

Every metric value comes from fairlearn (MetricFrame, demographic_parity_difference,
equalized_odds_difference) or scikit-learn, through debias.groups.metric_frame, the same function
the fit's validation uses, and every interval from scipy; this module only chooses the groups and
packs the results into plain dicts and tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from scipy.stats import binomtest

from debias.groups import column_groups, group_labels, metric_frame

CI_LEVEL = 0.95
INTERVAL_METHOD = "Clopper-Pearson (exact binomial) interval of each accuracy"


def accuracy_interval(correct: int, count: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of an accuracy of `correct` right out of `count`.

    Exact rather than a bootstrap: a percentile bootstrap of 0/8 or 8/8 is [0, 0] or [1, 1], the
    report most confident exactly where it knows least, on the small groups this tool exists
    for. The exact interval of 0/8 is [0, 0.37]; it never has zero width while 0 < count, and it
    holds its level at any count (it is conservative, never short).
    """
    if count <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(correct), int(count)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def group_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, level: float = CI_LEVEL
) -> tuple[MetricFrame, pd.DataFrame]:
    """(MetricFrame, per-group table): count, correct, accuracy with its interval, TPR, FPR, selection rate.

    The table is indexed by group name, sorted; rates that a group cannot define (TPR without
    positives, FPR without negatives) are NaN.
    """
    frame = metric_frame(y_true, y_pred, groups)
    table = frame.by_group.copy()
    table.index = table.index.astype(str)
    table["count"] = table["count"].astype(int)
    table["correct"] = table["correct"].astype(int)
    intervals = [accuracy_interval(row["correct"], row["count"], level) for _, row in table.iterrows()]
    table["accuracy_ci_low"] = [low for low, _ in intervals]
    table["accuracy_ci_high"] = [high for _, high in intervals]
    columns = [
        "count",
        "correct",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "true_positive_rate",
        "false_positive_rate",
        "selection_rate",
    ]
    return frame, table[columns].sort_index()


def parity_differences(y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.Series) -> dict:
    """fairlearn's demographic-parity and equalized-odds differences for one sensitive feature.

    Both are undefined (None, with the reason in `note`) when some group holds only one class:
    the group then decides the label, so a gap in selection rates measures the labels, not the
    model (0.996 on face detection, where every face group is all faces), and fairlearn would
    count the group's missing true- or false-positive rate as 0 and report an odds gap of up to
    1 that measures nothing.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    sensitive = pd.Series(np.asarray(sensitive).astype(str))
    result: dict = {"demographic_parity_difference": None, "equalized_odds_difference": None, "note": None}
    classes = pd.Series(y_true).groupby(sensitive).nunique()
    single = sorted(classes[classes < 2].index)
    if single:
        result["note"] = (
            ", ".join(single)
            + (" holds" if len(single) == 1 else " hold")
            + " a single class, so the group decides the label and parity between groups measures the labels"
        )
        return result
    result["demographic_parity_difference"] = float(
        demographic_parity_difference(y_true, y_pred, sensitive_features=sensitive)
    )
    result["equalized_odds_difference"] = float(equalized_odds_difference(y_true, y_pred, sensitive_features=sensitive))
    return result


def group_keys(attributes: pd.DataFrame, columns: list[str], names: pd.Series) -> dict[str, dict]:
    """Group name -> its attribute values as fields, e.g. 'Male=1|label=0' -> {'Male': 1, 'label': 0}."""
    frame = attributes[list(columns)].reset_index(drop=True).assign(_name=np.asarray(names).astype(str))
    first = frame.drop_duplicates("_name").set_index("_name")
    return {str(name): {col: _plain(row[col]) for col in columns} for name, row in first.iterrows()}


def _plain(value):
    """numpy scalars as Python numbers, so report.json keeps 1 as 1 and 'dark' as 'dark'."""
    return value.item() if isinstance(value, np.generic) else value


def _table_records(table: pd.DataFrame, keys: dict[str, dict]) -> dict:
    """Per-group table -> {group: {metric: value}} with the interval as a [low, high] pair and the group's fields."""
    records = {}
    for name, row in table.iterrows():
        records[str(name)] = {
            "key": keys.get(str(name), {}),
            "count": int(row["count"]),
            "correct": int(row["correct"]),
            "accuracy": float(row["accuracy"]),
            "accuracy_ci": [float(row["accuracy_ci_low"]), float(row["accuracy_ci_high"])],
            "true_positive_rate": float(row["true_positive_rate"]),
            "false_positive_rate": float(row["false_positive_rate"]),
            "selection_rate": float(row["selection_rate"]),
        }
    return records


def model_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    attributes: pd.DataFrame,
    group_columns: list[str],
    level: float = CI_LEVEL,
) -> dict:
    """Every number the report shows for one model's predictions on one split.

    `groups` is the table over the group columns crossed with the label (`group_labels`), the
    groups whose worst accuracy the project reports, each with its attribute values under `key`;
    `by_column` repeats it for each group column on its own; `parity` holds fairlearn's
    demographic-parity and equalized-odds differences with each group column (and their
    intersection, when there are several) as the sensitive feature. The worst group's interval
    is that group's own accuracy interval.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    attributes = attributes.reset_index(drop=True)
    names = group_labels(attributes, group_columns, y_true)
    frame, table = group_metrics(y_true, y_pred, names, level)
    keyed = attributes[list(group_columns)].assign(label=y_true)
    by_group = frame.by_group["accuracy"]
    overall = frame.overall
    result = {
        "accuracy": float(overall["accuracy"]),
        "accuracy_ci": list(accuracy_interval(int(overall["correct"]), int(overall["count"]), level)),
        "count": int(overall["count"]),
        "selection_rate": float(overall["selection_rate"]),
        "worst_group_accuracy": float(frame.group_min()["accuracy"]),
        "worst_group": str(by_group.idxmin()),
        "best_group_accuracy": float(frame.group_max()["accuracy"]),
        "best_group": str(by_group.idxmax()),
        "accuracy_gap": float(frame.difference(method="between_groups")["accuracy"]),
        "groups": _table_records(table, group_keys(keyed, [*group_columns, "label"], names)),
        "by_column": {},
        "parity": {},
    }
    result["worst_group_accuracy_ci"] = result["groups"][result["worst_group"]]["accuracy_ci"]
    sensitive = {col: column_groups(attributes, [col]) for col in group_columns}
    if len(group_columns) > 1:
        sensitive["|".join(group_columns)] = column_groups(attributes, group_columns)
    for name, groups in sensitive.items():
        if name in group_columns:
            keys = group_keys(attributes, [name], groups)
            result["by_column"][name] = _table_records(group_metrics(y_true, y_pred, groups, level)[1], keys)
        result["parity"][name] = parity_differences(y_true, y_pred, groups)
    return result


def training_weight_table(weights: np.ndarray, groups: pd.Series) -> pd.DataFrame:
    """Per training group: rows, share of rows, mean and median weight, share of weighted draws.

    With weights of mean 1 a sampler draws group g with probability sum_g(w) / N, so
    `share_of_draws` next to `share_of_rows` says how much the weights enlarge or shrink g.
    """
    frame = pd.DataFrame({"group": np.asarray(groups).astype(str), "weight": np.asarray(weights, dtype=float)})
    grouped = frame.groupby("group")["weight"]
    table = pd.DataFrame(
        {
            "count": grouped.size(),
            "mean_weight": grouped.mean(),
            "median_weight": grouped.median(),
            "max_weight": grouped.max(),
        }
    )
    table["share_of_rows"] = table["count"] / len(frame)
    table["share_of_draws"] = grouped.sum() / frame["weight"].sum()
    return table.sort_index()
