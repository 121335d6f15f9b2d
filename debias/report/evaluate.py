"""A run's models on the test split: their metrics, and paired tests of each against the uniform baseline."""

from __future__ import annotations

import pandas as pd

from debias.groups import group_labels
from debias.paired import RESAMPLES, compare_predictions
from debias.report.metrics import CI_LEVEL, model_metrics
from debias.report.run import MODEL_INFO, Run, model_order, model_short_label
from debias.report.strategy import describe

BASELINE = "uniform"


def attribute_columns(predictions: pd.DataFrame) -> dict[str, str]:
    """predictions' `attr_*` columns -> the attribute names they hold."""
    return {c: c[len("attr_") :] for c in predictions.columns if c.startswith("attr_")}


def model_rows(run: Run, name: str) -> pd.DataFrame:
    """One model's test predictions, ordered by sample_id when there is one, so models pair row by row."""
    rows = run.predictions[run.predictions["model"].astype(str) == name]
    if "sample_id" in rows.columns:
        rows = rows.assign(_id=rows["sample_id"].astype(str)).sort_values("_id", kind="stable").drop(columns="_id")
    return rows.reset_index(drop=True)


def row_groups(run: Run, rows: pd.DataFrame) -> pd.Series:
    """Each row's group: the run's group columns crossed with the label."""
    attributes = rows[list(attribute_columns(rows))].rename(columns=attribute_columns(rows))
    return group_labels(attributes, run.group_columns, rows["label"].to_numpy())


def uses_group_labels(run: Run, name: str) -> bool:
    """Whether training `name` read the true group labels: the oracle always, the weighted models with such weights."""
    if name in ("dbvae", "sampler"):
        return describe(run.config).uses_group_labels
    return MODEL_INFO.get(name, (name, False))[1]


def evaluate_models(run: Run, level: float = CI_LEVEL) -> dict:
    """model -> metrics (debias.report.metrics.model_metrics) on the test split, in reading order."""
    results = {}
    for name in model_order(run.predictions["model"]):
        rows = model_rows(run, name)
        attributes = rows[list(attribute_columns(rows))].rename(columns=attribute_columns(rows))
        metrics = model_metrics(rows["label"].to_numpy(), rows["pred"].to_numpy(), attributes, run.group_columns, level)
        label = MODEL_INFO.get(name, (name, False))[0]
        results[name] = {
            "label": label,
            "short_label": model_short_label(name),
            "uses_group_labels": uses_group_labels(run, name),
            **metrics,
        }
    return results


def paired_against(
    base: tuple[Run, str], other: tuple[Run, str], resamples: int = RESAMPLES, seed: int = 0
) -> dict | None:
    """Paired tests of model other[1] of run other[0] against model base[1] of run base[0], on the same test images.

    None when the two prediction tables do not hold the same images with the same labels (the
    caller decides whether that is an error). Groups are the base run's.
    """
    base_rows, other_rows = model_rows(*base), model_rows(*other)
    if len(base_rows) != len(other_rows):
        return None
    if "sample_id" in base_rows.columns and "sample_id" in other_rows.columns:
        if not (base_rows["sample_id"].astype(str).to_numpy() == other_rows["sample_id"].astype(str).to_numpy()).all():
            return None
    if not (base_rows["label"].to_numpy() == other_rows["label"].to_numpy()).all():
        return None
    return compare_predictions(base_rows, other_rows, row_groups(base[0], base_rows), resamples, seed)


def paired_tests(run: Run, models: dict, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """model -> paired tests against the uniform baseline (debias.paired.compare_predictions); {} without one."""
    if BASELINE not in models:
        return {}
    tests = {}
    for name in models:
        if name != BASELINE:
            result = paired_against((run, BASELINE), (run, name), resamples, seed)
            if result is not None:
                tests[name] = result
    return tests
