"""The report's numbers for the tools users already have: groups.csv for pandas and spreadsheets, MetricFrames for fairlearn."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fairlearn.metrics import MetricFrame

from debias.groups import metric_frame
from debias.report.evaluate import attribute_columns, model_rows
from debias.report.run import load_run, model_order
from debias.run_dir import REPORT_GROUPS, REPORT_JSON

# groups.csv's fixed columns; the group attributes go between `group` and `label`.
LEADING = ["model", "group"]
TRAILING = [
    "label",
    "n",
    "accuracy",
    "ci_low",
    "ci_high",
    "true_positive_rate",
    "false_positive_rate",
    "selection_rate",
]


# How groups.csv begins, to tell an earlier one (which `debias report --out` may replace) from a user's file.
GROUPS_HEADER = ",".join(LEADING)


def groups_table(models: dict, group_columns: list[str]) -> pd.DataFrame:
    """Long format, one row per model and group: the per-group table of report.json as groups.csv holds it.

    Columns: model, group, one column per group attribute (prefixed attr_ only where its name
    would clash with a fixed column), label, n, accuracy, ci_low, ci_high, true_positive_rate,
    false_positive_rate, selection_rate. Undefined rates are empty cells.
    """
    names = {c: (f"attr_{c}" if c in LEADING + TRAILING else c) for c in group_columns}
    rows = []
    for model, m in models.items():
        for group, r in m["groups"].items():
            key = r.get("key", {})
            rows.append(
                {
                    "model": model,
                    "group": group,
                    **{names[c]: key.get(c) for c in group_columns},
                    "label": key.get("label"),
                    "n": r["count"],
                    "accuracy": r["accuracy"],
                    "ci_low": r["accuracy_ci"][0],
                    "ci_high": r["accuracy_ci"][1],
                    "true_positive_rate": r["true_positive_rate"],
                    "false_positive_rate": r["false_positive_rate"],
                    "selection_rate": r["selection_rate"],
                }
            )
    return pd.DataFrame(rows, columns=LEADING + list(names.values()) + TRAILING)


def groups_csv_path(json_path: Path) -> Path:
    """groups.csv beside report.json; beside another name, NAME.groups.csv (two reports in one folder keep theirs)."""
    if json_path.name == REPORT_JSON:
        return json_path.with_name(REPORT_GROUPS)
    return json_path.with_name(f"{json_path.stem}.groups.csv")


def metric_frames(run_dir: str | Path) -> dict[str, MetricFrame]:
    """fairlearn MetricFrame per model of a run folder, on its test split, grouped by the group columns and the label.

        from debias.report import metric_frames

        frames = metric_frames("runs/celeba")
        frames["dbvae"].by_group["accuracy"]        # indexed by (Male, label), as report.json's groups
        frames["dbvae"].group_min()["accuracy"]     # worst-group accuracy
        frames["dbvae"].difference()                # largest gap between groups, per metric

    The metrics are the report's (count, correct, accuracy, true- and false-positive rate,
    selection rate; a rate a group cannot define is NaN). Raises debias.errors.UserError when
    `run_dir` is not a finished run folder.
    """
    run = load_run(run_dir)
    frames = {}
    for name in model_order(run.predictions["model"]):
        rows = model_rows(run, name)
        attributes = rows[list(attribute_columns(rows))].rename(columns=attribute_columns(rows))
        sensitive = attributes[run.group_columns].assign(label=rows["label"].to_numpy())
        frames[name] = metric_frame(rows["label"].to_numpy(), rows["pred"].to_numpy(), sensitive)
    return frames
