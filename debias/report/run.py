"""A run folder as the report reads it (through debias.run_folder.RunFolder), and its dataset again.

Reads only what `debias fit` saved (config.json, predictions_test.csv, weights.csv, history.csv,
latents.npy, checkpoint.pt), each checked as RunFolder checks it. The training split's attributes
and images come from reloading the dataset named in config.json -- synthfaces regenerates
deterministically, CelebA reads its cache -- or from the dataset the caller already holds
(`debias fit --report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from debias.errors import UserError
from debias.groups import cell_weights
from debias.run_dir import (
    BY_WEIGHTS,
    CHECKPOINT,
    FIT_FILES,
    HISTORY,
    LATENTS,
    RECORD,
    REPORT_HTML,
    WEIGHTS,
    predictions_file,
)
from debias.run_folder import RunFolder
from debias.weight_files import group_columns

TEST_PREDICTIONS = predictions_file("test")
# What a report or comparison never replaces in a run folder, even with --overwrite.
RUN_FILES = frozenset({*FIT_FILES, RECORD})

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
    """What a run directory holds, read once. Optional files are None when absent.

    `config` is config.json: what the fit did (its models trained by its own weights).
    `weights_config` is config.json as far as it describes weights.csv as it is now: the weight
    statistics and per-cell weights computed from the file, and when `debias weights --out
    RUN/weights.csv` replaced it, that command's strategy and settings.
    """

    folder: RunFolder
    config: dict
    predictions: pd.DataFrame
    weights: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    latents: np.ndarray | None = None
    has_checkpoint: bool = False
    weights_config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.folder.path

    @property
    def settings(self) -> dict:
        """The fit's resolved settings (config.json's "settings")."""
        return self.folder.settings

    @property
    def group_columns(self) -> list[str]:
        """The attributes that define the evaluation groups."""
        return self.folder.group_columns

    @property
    def vae_on_all(self) -> bool:
        """Whether the VAE trained on every image (else on positives only)."""
        return self.folder.vae_on_all


def _read_optional(folder: RunFolder, name: str, read, notes: list[str], what: str):
    if not (folder.path / name).is_file():
        notes.append(f"{name} is missing, so the report has no {what}.")
        return None
    try:
        return read()
    except UserError as exc:  # a damaged optional file costs one section, not the report
        notes.append(f"{name} could not be read ({exc}), so the report has no {what}.")
        return None


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; UserError when it is not a finished one, or a file the report's figures need is damaged.

    weights.csv is checked as `SampleWeights.load` checks it: a damaged one is refused rather than
    shown as wrong figures. history.csv, latents.npy and checkpoint.pt only feed curves and
    pictures: when one is damaged, the report's notes say so and leave those out.
    """
    folder = RunFolder(run_dir)
    if not folder.path.is_dir():
        raise UserError(f"run folder {folder.path} does not exist; pass the folder `debias fit --out` wrote")
    folder.require(TEST_PREDICTIONS, then=f"run `debias report {folder.path}`")
    run = Run(folder=folder, config=folder.config, predictions=folder.predictions("test"))
    if (folder.path / WEIGHTS).is_file():
        run.weights = folder.weights
    else:
        run.notes.append(f"{WEIGHTS} is missing, so the report has no training weights.")
    run.weights_config = _describing_weights(run)
    run.history = _read_optional(folder, HISTORY, lambda: folder.history, run.notes, "training curves")
    run.latents = _read_optional(folder, LATENTS, lambda: folder.latents, run.notes, "latent traversals")
    run.has_checkpoint = (folder.path / CHECKPOINT).is_file()
    if not run.has_checkpoint:
        run.notes.append("checkpoint.pt is missing, so the report has no reconstructions or traversals.")
    return run


def _describing_weights(run: Run) -> dict:
    """config.json with what it says about the weights replaced by what weights.csv holds now (see Run)."""
    if run.weights is None:
        return run.config
    import torch

    from debias.weighting import STRATEGIES, needs_groups, weight_summary

    frame = run.weights
    described = dict(run.config, final_weights=weight_summary(torch.tensor(frame["weight"].to_numpy(dtype=np.float64))))
    described.pop("group_weights", None)  # the fit's weights' cells; the file's, when it names its groups
    attributes = group_columns(frame)
    if run.group_columns and "label" in frame.columns and set(run.group_columns) <= set(attributes.columns):
        described["group_weights"] = cell_weights(
            frame["weight"].to_numpy(), attributes, run.group_columns, frame["label"].to_numpy()
        )
    origin = run.folder.weights_origin()
    if origin.by == BY_WEIGHTS and origin.weighting:
        strategy, weighting = str(origin.weighting.get("strategy")), origin.weighting
        trained = run.config.get("weighting_strategy") or (run.settings.get("weighting") or {}).get("strategy")
        run.notes.append(
            f"weights.csv was rewritten by `debias weights` ({strategy}) after the fit: the weights shown are that "
            f"file's, while the models were trained with the fit's own ({trained}) weights."
        )
    elif origin.by is None:
        strategy, weighting = "unknown", {}
        run.notes.append(
            "weights.csv was changed after debias wrote it: the weights shown are the file's as it is now, but how it "
            "was made is unknown."
        )
    else:
        return described
    described.pop("weighting_selection", None)
    described.update(
        settings=dict(run.settings, weighting=weighting),
        weighting_strategy=strategy,
        uses_group_labels=strategy in STRATEGIES and needs_groups(strategy),
    )
    return described


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


def check_report_targets(targets: dict[Path, bool], overwrite: bool) -> None:
    """UserError unless writing every path of `targets` replaces only reports.

    `targets`: each path to write -> whether it holds debias's own earlier output there (which is
    always replaced). A file of a run folder (config.json, weights.csv, checkpoint.pt, ...) is never
    replaced, not even with `overwrite`; any other existing file needs `overwrite`.
    """
    html = next(iter(targets))
    if html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {html} must name an .html file (its .json lands beside it) or a folder")
    for target in targets:
        if target.is_dir():
            raise UserError(f"--out: {target} is a folder; name an .html file or a folder to hold the report")
        if target.name in RUN_FILES and RunFolder.beside(target) is not None:
            raise UserError(
                f"--out {html} would replace {target.name}, a file of the run in {target.parent}; choose another --out"
            )
    if overwrite:
        return
    for target, ours in targets.items():
        if target.exists() and not ours:
            raise UserError(
                f"{target} already exists and is not a report written by `debias report`; "
                "pass --overwrite to replace it, or choose another --out"
            )


def is_json_with(path: Path, keys: set[str]) -> bool:
    """Whether `path` holds a JSON object with (at least) `keys`: a report or comparison debias wrote."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and keys <= content.keys()


def starts_with_header(path: Path, header: str) -> bool:
    """Whether the CSV at `path` begins with the column names `header` ("model,group,...")."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().startswith(header)
    except (OSError, UnicodeDecodeError):
        return False


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
