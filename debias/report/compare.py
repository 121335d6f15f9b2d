"""`write_comparison`: several run folders side by side in one page, each tested against a baseline run.

For comparing strategies or seeds on the same data: each model's accuracy and worst-group
accuracy with their exact intervals, and paired tests of each model against the same model of the
baseline run on the same test images (McNemar for accuracy, a paired permutation test for
worst-group accuracy). Runs tested on other images cannot be paired and are refused.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pandas as pd

from debias import __version__
from debias.errors import UserError
from debias.paired import RESAMPLES, SIGNIFICANCE, SMALL_GROUP, significance_note
from debias.report.build import PAIRED_METHOD, json_safe
from debias.report.evaluate import evaluate_models, paired_against
from debias.report.headline import percent
from debias.report.metrics import CI_LEVEL, INTERVAL_METHOD
from debias.report.render import environment
from debias.report.run import Run, check_report_targets, is_json_with, load_run
from debias.report.strategy import describe
from debias.run_dir import BY_REPORT
from debias.run_folder import output_folder
from debias.run_warnings import run_warnings

# Keys every compare.json has: how an earlier comparison (which --out may replace) is told from other files.
COMPARISON_KEYS = {"baseline", "summary", "runs", "test_images"}


def _test_images(run: Run) -> pd.Series:
    """The run's test images: label by sample_id (every model of a run predicts the same images)."""
    if "sample_id" not in run.predictions.columns:
        raise UserError(
            f"{run.run_dir}'s predictions_test.csv has no sample_id column, so its test images cannot be paired "
            "with another run's; rerun `debias fit`"
        )
    first = run.predictions[run.predictions["model"] == run.predictions["model"].iloc[0]]
    return first.set_index(first["sample_id"].astype(str))["label"].sort_index()


def check_same_test_images(base: Run, other: Run) -> None:
    """UserError unless `other` was tested on exactly the images (and labels) `base` was, and grouped alike."""
    a, b = _test_images(base), _test_images(other)
    if not a.index.equals(b.index):
        differ = len(a.index.symmetric_difference(b.index))
        raise UserError(
            f"{other.run_dir} was tested on other images than the baseline {base.run_dir} ({differ} test ids are in "
            "one run only); paired tests need the same test split: compare runs of the same data, --limit and "
            "dataset options"
        )
    if not (a.to_numpy() == b.to_numpy()).all():
        raise UserError(
            f"{other.run_dir} labels its test images differently from the baseline {base.run_dir} (another --target?); "
            "compare runs of the same task"
        )
    if other.group_columns != base.group_columns:
        raise UserError(
            f"{other.run_dir} groups its test images by {other.group_columns or 'nothing'}, the baseline "
            f"{base.run_dir} by {base.group_columns or 'nothing'}; compare runs with the same --groups"
        )


def _run_names(runs: list[Run]) -> list[str]:
    """Folder names, or the paths as given where two folders share a name."""
    names = [r.run_dir.resolve().name for r in runs]
    return [str(r.run_dir) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def _sentence(name: str, base_name: str, model: dict, base_model: dict, test: dict) -> str:
    """'RUN: DB-VAE raised worst-group accuracy from 84.0% in BASE to 86.4% (group ..., 8 test images), not significant (p = 0.41).'"""
    x, y = base_model["worst_group_accuracy"], model["worst_group_accuracy"]
    change = round(100 * (y - x), 1)
    group = model["worst_group"]
    count = model["groups"][group]["count"]
    where = f"group {group}" + (f", {count} test images" if count < SMALL_GROUP else "")
    if change == 0:
        what = f"left worst-group accuracy unchanged at {percent(y)} against {base_name} ({where})"
    else:
        verb = "raised" if change > 0 else "lowered"
        what = f"{verb} worst-group accuracy from {percent(x)} in {base_name} to {percent(y)} ({where})"
    return f"{name}: {model['label']} {what}, {significance_note(test['worst_group_accuracy']['p_value'])}."


def build_comparison(
    run_dirs: list[str | Path], baseline: str | Path | None = None, *, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[dict, str]:
    """(compare.json content, compare.html text) for several run folders; the baseline is the first unless named."""
    if baseline is not None and Path(baseline).resolve() not in [Path(r).resolve() for r in run_dirs]:
        run_dirs = [baseline, *run_dirs]
    if len(run_dirs) < 2:
        raise UserError("a comparison needs at least two run folders: debias report RUN1 RUN2 ... --out compare.html")
    runs = [load_run(r) for r in run_dirs]
    base_index = 0 if baseline is None else [r.run_dir.resolve() for r in runs].index(Path(baseline).resolve())
    base = runs[base_index]
    for run in runs:
        if run is not base:
            check_same_test_images(base, run)
    names = _run_names(runs)
    evaluated = [evaluate_models(run) for run in runs]
    entries, sentences = [], []
    for i, (run, models) in enumerate(zip(runs, evaluated)):
        tests = {}
        if i != base_index:
            for model in models:
                if model in evaluated[base_index]:
                    tests[model] = paired_against((base, model), (run, model), resamples, seed)
        if "dbvae" in tests:
            sentences.append(
                _sentence(names[i], names[base_index], models["dbvae"], evaluated[base_index]["dbvae"], tests["dbvae"])
            )
        weighting = describe(run.config)
        entries.append(
            {
                "name": names[i],
                "run_dir": str(run.run_dir.resolve()),
                "baseline": i == base_index,
                "weighting": weighting.name,
                "uses_group_labels": weighting.uses_group_labels,
                "seed": run.settings.get("seed"),
                "epochs": run.settings.get("epochs"),
                "warnings": run_warnings(
                    run.weights_config,
                    {m: v["selection_rate"] for m, v in models.items()},
                    None,
                    {m: v["label"] for m, v in models.items()}.get,
                ),
                "models": {
                    model: {
                        key: m[key]
                        for key in (
                            "label",
                            "short_label",
                            "accuracy",
                            "accuracy_ci",
                            "worst_group_accuracy",
                            "worst_group_accuracy_ci",
                            "worst_group",
                        )
                    }
                    | {"worst_group_count": m["groups"][m["worst_group"]]["count"], "vs_baseline": tests.get(model)}
                    for model, m in models.items()
                },
            }
        )
    report = json_safe(
        {
            "format_version": 1,
            "debias_version": __version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "baseline": names[base_index],
            "summary": sentences,
            "runs": entries,
            "test_images": len(_test_images(base)),
            "group_columns": base.group_columns,
            "intervals": {
                "level": CI_LEVEL,
                "method": INTERVAL_METHOD,
                "paired_tests": PAIRED_METHOD,
                "significance": SIGNIFICANCE,
                "resamples": resamples,
                "seed": seed,
            },
        }
    )
    html = environment().get_template("compare.html.j2").render(report=report)
    return report, html


def write_comparison(
    run_dirs: list[str | Path],
    out: str | Path,
    baseline: str | Path | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write one self-contained comparison page (and its .json beside it) for several run folders.

        write_comparison(["runs/histogram", "runs/errors", "runs/joint"], "compare.html")

    Every run must have been tested on the same images as the baseline (the first run, or
    `baseline`); each model is tested against the baseline run's model of the same name.
    Returns the HTML path; `out` may also name a folder (compare.html inside it). An earlier
    comparison there is replaced; any other existing file only with `overwrite`, a file of a run
    folder never (check_report_targets).
    """
    out = Path(out)
    html_path = out / "compare.html" if out.is_dir() or out.suffix == "" else out
    json_path = html_path.with_suffix(".json")
    ours = is_json_with(json_path, COMPARISON_KEYS)
    check_report_targets({html_path: ours, json_path: ours}, overwrite)
    report, html = build_comparison(run_dirs, baseline, resamples=resamples, seed=seed)
    try:
        with output_folder(html_path.parent) as destination:
            destination.write_text(html_path.name, html, by=BY_REPORT)
            destination.write_text(
                json_path.name, json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n", by=BY_REPORT
            )
    except OSError as exc:
        raise UserError(
            f"cannot write the comparison to {html_path.parent}: {exc.strerror}; choose another --out"
        ) from None
    return html_path
