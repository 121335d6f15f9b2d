"""`write_report`: a run directory -> report.json, groups.csv and one self-contained report.html.

Reads only what `debias fit` saved (config.json, predictions_test.csv, weights.csv, history.csv,
latents.npy, checkpoint.pt); nothing is retrained. The training split's attributes and images
(for weights by group and thumbnails) come from reloading the dataset named in config.json --
synthfaces regenerates deterministically, CelebA reads its cache -- or from `dataset=` when the
caller has it in memory already (`debias fit --report`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from debias import __version__, oserrors
from debias.errors import UserError
from debias.groups import column_groups, group_labels
from debias.paired import RESAMPLES, SIGNIFICANCE
from debias.report.evaluate import evaluate_models, paired_tests
from debias.report.exports import GROUPS_HEADER, groups_csv_path, groups_table
from debias.report.headline import headline, others_sentence
from debias.report.metrics import CI_LEVEL, INTERVAL_METHOD, training_weight_table
from debias.report.pictures import data_uri, pictures, weighted_mask
from debias.report.render import environment
from debias.report.run import (
    Run,
    aligned_training_rows,
    check_report_targets,
    earlier_output,
    load_run,
    load_run_dataset,
    model_label,
    report_paths,
    starts_with_header,
)
from debias.report.strategy import auto_sentence, describe
from debias.run_dir import BY_REPORT
from debias.run_folder import RunFolder, output_folder
from debias.run_warnings import constant_predictors, run_warnings
from debias.weights_check import AUTO_MEASURED

REPORT_FORMAT_VERSION = 2  # 2: exact intervals, group keys, paired tests, warnings
# Keys every report.json has: how an earlier report (which --out may replace) is told from other files.
REPORT_KEYS = {"summary", "models", "split", "run_dir"}
PAIRED_METHOD = (
    "McNemar's exact test for a group's (or the overall) accuracy; a paired permutation test (each image's two "
    "predictions swapped at random) for worst-group accuracy; both on the same test images, two-sided"
)


def _records(table: pd.DataFrame) -> dict:
    return {str(i): {k: (int(v) if k == "count" else float(v)) for k, v in row.items()} for i, row in table.iterrows()}


def training_weights_by_group(run: Run, dataset, rows: np.ndarray) -> dict:
    """Per training group (crossed with the label, and per group column): rows, shares, mean weight."""
    train = dataset.train
    attributes = train.attributes.iloc[rows].reset_index(drop=True)
    labels = train.labels[rows]
    weights = run.weights["weight"].to_numpy(dtype=float)
    result = {
        "groups": _records(training_weight_table(weights, group_labels(attributes, run.group_columns, labels))),
        "by_column": {},
    }
    for col in run.group_columns:
        result["by_column"][col] = _records(training_weight_table(weights, column_groups(attributes, [col])))
    return result


def json_safe(value):
    """JSON-safe copy: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _figures(
    run: Run, models: dict, train_weights_frame: pd.DataFrame | None, group_order: list[str], weighting: str
) -> dict:
    from debias.report import plots

    palette = plots.model_palette(
        list(models)
        + ([m for m in run.history["model"].unique() if m not in models] if run.history is not None else [])
    )
    labels = {name: model_label(name) for name in palette}
    table = pd.DataFrame(
        [
            {
                "model": name,
                "group": g,
                "accuracy": row["accuracy"],
                "ci_low": row["accuracy_ci"][0],
                "ci_high": row["accuracy_ci"][1],
            }
            for name, m in models.items()
            for g, row in m["groups"].items()
        ]
    )
    figures = {"group_accuracy": data_uri(plots.group_accuracy(table, labels, palette)) if len(table) else None}
    figures["weights"] = None
    if train_weights_frame is not None:
        figures["weights"] = data_uri(plots.weight_distribution(train_weights_frame, group_order, weighting))
    figures["curves"] = None
    if run.history is not None and "model" in run.history.columns:
        figures["curves"] = data_uri(plots.training_curves(run.history, labels, palette))
    return figures


def _epochs_trained(run: Run) -> dict[str, int]:
    """model -> epochs it trained, from history.csv (the VAE's warm-up epochs included); {} without it."""
    if run.history is None or "epoch" not in run.history:
        return {}
    return {str(model): int(n) for model, n in run.history.groupby("model")["epoch"].max().items()}


def _flatten(settings: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, json.dumps(value) if not isinstance(value, str) else value))
    return rows


def _weights_frame(run: Run, dataset, rows: np.ndarray) -> pd.DataFrame:
    """One row per weighted training image: its group and weight (for the box plots)."""
    train = dataset.train
    mask = weighted_mask(run.weights)
    names = group_labels(train.attributes.iloc[rows].reset_index(drop=True), run.group_columns, train.labels[rows])
    return pd.DataFrame({"group": names.to_numpy()[mask], "weight": run.weights["weight"].to_numpy()[mask]})


def _cells(weights_by_group: dict | None) -> dict | None:
    """The reloaded training weights per cell, in run_warnings' form; None leaves it to config.json's group_weights."""
    if not weights_by_group:
        return None
    return {g: {"rows": r["count"], "mean_weight": r["mean_weight"]} for g, r in weights_by_group["groups"].items()}


def build_report(
    run_dir: str | Path, *, resamples: int = RESAMPLES, seed: int = 0, dataset=None
) -> tuple[dict, str, pd.DataFrame]:
    """(report.json content, report.html text, groups.csv table) for a run directory, written nowhere."""
    import fairlearn

    run = load_run(run_dir)
    models = evaluate_models(run)
    tests = paired_tests(run, models, resamples, seed)
    constant = constant_predictors({name: m["selection_rate"] for name, m in models.items()})
    # The models trained by the fit's weights; the weights section describes weights.csv as it is now.
    trained_with, weighting = describe(run.config), describe(run.weights_config)
    text, html_sentence = headline(models, tests, constant, trained_with.name)
    dataset = load_run_dataset(run, dataset) if (run.weights is not None or run.has_checkpoint) else None
    rows = aligned_training_rows(run, dataset)
    weights_by_group = training_weights_by_group(run, dataset, rows) if rows is not None else None
    weights_frame = _weights_frame(run, dataset, rows) if rows is not None else None
    warnings = run_warnings(
        run.weights_config,
        {name: m["selection_rate"] for name, m in models.items()},
        _cells(weights_by_group),
        lambda name: models[name]["label"],
    )

    test_groups = list(next(iter(models.values()))["groups"]) if models else []
    weighted_groups = sorted(weights_frame["group"].unique()) if weights_frame is not None else []
    report = {
        "format_version": REPORT_FORMAT_VERSION,
        "debias_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "run_dir": str(Path(run_dir).resolve()),
        "split": "test",
        "summary": text,
        "warnings": warnings,
        "models": models,
        "paired_tests": {"baseline": "uniform", "models": tests} if tests else None,
        "training_weights": weights_by_group,
        "final_weights": run.weights_config.get("final_weights"),
        "weighting_strategy": weighting.name,
        "weighting": asdict(weighting),
        "trained_with": trained_with.name,
        "weighting_selection": run.weights_config.get("weighting_selection"),
        "latent_health": run.config.get("latent_health"),
        "settings": run.settings,
        "dataset": run.config.get("dataset"),
        "epochs_trained": _epochs_trained(run),
        "intervals": {
            "level": CI_LEVEL,
            "method": INTERVAL_METHOD,
            "paired_tests": PAIRED_METHOD,
            "significance": SIGNIFICANCE,
            "resamples": resamples,
            "seed": seed,
        },
        "notes": run.notes,
    }
    figures = _figures(run, models, weights_frame, weighted_groups, weighting.name)
    images = pictures(run, dataset, rows)
    report["notes"] = run.notes
    report = json_safe(report)
    redundant = {
        col
        for col, table in (report["models"][next(iter(models))]["by_column"].items() if models else [])
        if len(table) == len(test_groups)
    }
    html = (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            headline=html_sentence,
            others=others_sentence(models, tests),
            test_groups=test_groups,
            figures=figures,
            pictures=images,
            weighting=weighting,
            auto=auto_sentence(run.weights_config),
            auto_measured=AUTO_MEASURED,
            settings_rows=_flatten(run.settings),
            run_name=Path(run_dir).resolve().name,
            redundant_columns=redundant,
            fairlearn_version=fairlearn.__version__,
        )
    )
    return report, html, groups_table(models, run.group_columns)


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    dataset=None,
    overwrite: bool = False,
) -> Path:
    """Write report.html, report.json and groups.csv for a run directory and return the HTML path.

    out=None writes them into RUN; otherwise `out` is the HTML file (its .json and .groups.csv
    land beside it) or a folder to hold all three. An earlier report there is replaced (not
    another run's in that run's own folder); any other existing file only with `overwrite`, a
    file of a run folder never (check_report_targets).
    `resamples` and `seed` drive the paired permutation test of worst-group accuracy. `dataset` (a
    debias.data.Dataset) skips reloading the data when the caller has it in memory, as `debias fit
    --report` does.
    """
    html_path, json_path = report_paths(run_dir, out)
    groups_path = groups_csv_path(json_path)
    # An earlier report is replaced without asking, but not another run's in that run's own folder.
    into_other_run = RunFolder.beside(html_path) is not None and html_path.parent.resolve() != Path(run_dir).resolve()
    ours = earlier_output(json_path, REPORT_KEYS) is not None and not into_other_run
    check_report_targets(
        {html_path: ours, json_path: ours, groups_path: ours and starts_with_header(groups_path, GROUPS_HEADER)},
        overwrite,
        f"belongs to the run in {html_path.parent}" if into_other_run else "is not a report written by `debias report`",
    )
    report, html, groups = build_report(run_dir, resamples=resamples, seed=seed, dataset=dataset)
    text = json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    try:
        # Into a run folder, recorded in its files.json: a new fit over it removes them.
        with output_folder(html_path.parent) as destination:
            destination.write_text(html_path.name, html, by=BY_REPORT)
            destination.write_text(json_path.name, text, by=BY_REPORT)
            destination.write_csv(groups_path.name, groups, by=BY_REPORT)
    except OSError as exc:
        raise UserError(
            f"cannot write the report to {html_path.parent}: {oserrors.reason(exc)}; choose another --out"
        ) from None
    return html_path
