"""A run folder as the report reads it: its config, predictions and optional files, and its dataset again.

Reads only what `debias fit` saved (config.json, predictions_test.csv, weights.csv, history.csv,
latents.npy, checkpoint.pt). The training split's attributes and images come from reloading the
dataset named in config.json -- synthfaces regenerates deterministically, CelebA reads its cache --
or from the dataset the caller already holds (`debias fit --report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from debias import locks
from debias.errors import UserError
from debias.run_dir import (
    CHECKPOINT,
    CONFIG,
    FIT_FILES,
    HISTORY,
    LATENTS,
    LOCK,
    REPORT_HTML,
    WEIGHTS,
    predictions_file,
    read_run_config,
)

TEST_PREDICTIONS = predictions_file("test")

# Known model names: display label and whether training used the ground-truth group labels.
MODEL_INFO = {
    "uniform": ("Uniform sampling", False),
    "sampler": ("Weighted sampler (weights.csv)", False),
    "dbvae": ("DB-VAE", False),
    "oracle": ("Group-balanced oracle (uses group labels)", True),
}


# Column headers, where several models stand side by side.
SHORT_LABELS = {"uniform": "Uniform", "sampler": "Sampler", "dbvae": "DB-VAE", "oracle": "Oracle"}


@dataclass
class Run:
    """What a run directory holds, read once. Optional files are None when absent."""

    run_dir: Path
    config: dict
    predictions: pd.DataFrame
    weights: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    latents: np.ndarray | None = None
    checkpoint: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def settings(self) -> dict:
        """The fit's resolved settings (config.json's "settings")."""
        return self.config.get("settings", {})

    @property
    def group_columns(self) -> list[str]:
        """The attributes that define the evaluation groups."""
        return list(self.config.get("dataset", {}).get("group_columns", []))

    @property
    def vae_on_all(self) -> bool:
        """Whether the VAE trained on every image (else on positives only)."""
        return bool(self.config.get("dataset", {}).get("vae_on_all", True))


def _read_optional(path: Path, reader, notes: list[str], what: str):
    if not path.is_file():
        notes.append(f"{path.name} is missing, so the report has no {what}.")
        return None
    try:
        return reader(path)
    except Exception as exc:  # a damaged optional file costs one section, not the report
        notes.append(f"{path.name} could not be read ({type(exc).__name__}: {exc}), so the report has no {what}.")
        return None


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; UserError when it is not one (no config.json or predictions_test.csv)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; pass the folder `debias fit --out` wrote")
    if (run_dir / CONFIG).is_file() and not (run_dir / TEST_PREDICTIONS).is_file():
        _refuse_unfinished(run_dir)
    for required in (CONFIG, TEST_PREDICTIONS):
        if not (run_dir / required).is_file():
            raise UserError(
                f"{run_dir} has no {required}, so it is not a finished `debias fit` run folder; rerun the fit or pick another folder"
            )
    try:
        config = read_run_config(run_dir)
        predictions = pd.read_csv(run_dir / TEST_PREDICTIONS)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read {run_dir}: {exc}; rerun `debias fit`") from None
    missing = {"model", "label", "pred"} - set(predictions.columns)
    if missing:
        raise UserError(f"{run_dir / TEST_PREDICTIONS} lacks the columns {sorted(missing)}; rerun `debias fit`")
    run = Run(run_dir=run_dir, config=config, predictions=predictions)
    run.weights = _read_optional(run_dir / WEIGHTS, pd.read_csv, run.notes, "training weights")
    run.history = _read_optional(run_dir / HISTORY, pd.read_csv, run.notes, "training curves")
    run.latents = _read_optional(run_dir / LATENTS, np.load, run.notes, "latent traversals")
    if (run_dir / CHECKPOINT).is_file():
        run.checkpoint = run_dir / CHECKPOINT
    else:
        run.notes.append("checkpoint.pt is missing, so the report has no reconstructions or traversals.")
    absent = [c for c in run.group_columns if f"attr_{c}" not in predictions.columns]
    if absent:
        raise UserError(f"{TEST_PREDICTIONS} lacks the group columns {absent} named in config.json; rerun `debias fit`")
    return run


def _refuse_unfinished(run_dir: Path) -> None:
    """UserError for a run folder whose fit has not written its predictions: still running, or stopped."""
    holder = locks.live_holder(run_dir / LOCK)
    if holder is not None:
        raise UserError(
            f"the fit in {run_dir} is still running ({locks.describe_holder(holder)}); "
            f"run `debias report {run_dir}` when it has finished"
        )
    raise UserError(
        f"the fit in {run_dir} did not finish (it was stopped before writing its predictions). "
        f"Continue it with `debias fit --resume {run_dir}`, then run `debias report {run_dir}`"
    )


def report_paths(run_dir: str | Path, out: str | Path | None) -> tuple[Path, Path]:
    """(html, json): RUN/report.html by default; `out` names the HTML file (or a folder for it)."""
    if out is None:
        html = Path(run_dir) / REPORT_HTML
    else:
        out = Path(out)
        html = out / REPORT_HTML if out.is_dir() or out.suffix == "" else out
        if html.suffix.lower() == ".json":  # `--out report.json` still gets its HTML beside it
            html = html.with_suffix(".html")
    return html, html.with_suffix(".json")


def check_report_targets(run_dir: str | Path, html: Path, json_path: Path, overwrite: bool) -> None:
    """UserError unless writing the report to `html` and `json_path` replaces only reports.

    A file of a run folder (config.json, weights.csv, checkpoint.pt, ...) is never replaced, not
    even with `overwrite`; the report's own earlier output (a report.json debias wrote, and the
    HTML beside it) always may be; any other existing file needs `overwrite`.
    """
    if html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {html} must name an .html file (its .json lands beside it) or a folder")
    for target in (html, json_path):
        if target.name in FIT_FILES and (target.parent / CONFIG).is_file():
            raise UserError(
                f"--out {target} would replace {target.name}, a file of the run in {target.parent}; choose another --out"
            )
    if overwrite:
        return
    ours = _is_report_json(json_path)
    for target in (html, json_path):
        if target.is_dir():
            raise UserError(f"--out: {target} is a folder; name an .html file or a folder to hold the report")
        if target.exists() and not ours:
            raise UserError(
                f"{target} already exists and is not a report written by `debias report`; "
                "pass --overwrite to replace it, or choose another --out"
            )


def _is_report_json(path: Path) -> bool:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and {"summary", "models", "split", "run_dir"} <= content.keys()


def model_order(names) -> list[str]:
    """Known models in a fixed reading order (baseline first, oracle last), then the rest by name."""
    names = list(dict.fromkeys(str(n) for n in names))
    known = [m for m in MODEL_INFO if m in names]
    return known + sorted(n for n in names if n not in MODEL_INFO)


def model_label(name: str) -> str:
    """Display name of a model ('DB-VAE'); unknown names are shown as they are."""
    return MODEL_INFO.get(name, (name, False))[0]


def model_short_label(name: str) -> str:
    """Short display name of a model for column headers ('Sampler'); unknown names as they are."""
    return SHORT_LABELS.get(name, name)


def load_run_dataset(run: Run, dataset):
    """The run's dataset (given or reloaded from config.json), or None with a note saying why."""
    if dataset is not None:
        return dataset
    from debias.data import load_dataset

    settings = run.settings
    # The fit's cache folder and workers are recorded apart from its settings (config.json "runtime").
    options = {**settings.get("data_options", {}), **(run.config.get("runtime") or {}).get("data_options", {})}
    try:
        return load_dataset(settings["data"], image_size=settings["image_size"], **options)
    except Exception as exc:  # missing files, a moved --root, a changed loader: the metrics still stand
        run.notes.append(
            f"The dataset could not be reloaded ({exc}), so the report has no weights by group, thumbnails or reconstructions."
        )
        return None


def aligned_training_rows(run: Run, dataset) -> np.ndarray | None:
    """Row of dataset.train for each row of weights.csv, or None (with a note) if they disagree."""
    if dataset is None or run.weights is None:
        return None
    position = pd.Series(np.arange(len(dataset.train)), index=dataset.train.sample_ids)
    ids = run.weights["sample_id"].astype(str)
    if not ids.isin(position.index).all():
        run.notes.append(
            "weights.csv names training samples the reloaded dataset lacks, so weights by group and thumbnails are left out."
        )
        return None
    rows = position.loc[ids].to_numpy()
    if "label" in run.weights.columns and not np.array_equal(
        run.weights["label"].to_numpy(), dataset.train.labels[rows]
    ):
        run.notes.append(
            "The reloaded dataset's labels differ from weights.csv (was the dataset changed?), so weights by group and thumbnails are left out."
        )
        return None
    return rows
