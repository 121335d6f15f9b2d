"""`write_report`: a run directory -> report.json and one self-contained report.html.

Reads only what `debias fit` saved (config.json, predictions_test.csv, weights.csv, history.csv,
latents.npy, checkpoint.pt); nothing is retrained. The training split's attributes and images
(for weights by group and thumbnails) come from reloading the dataset named in config.json --
synthfaces regenerates deterministically, CelebA reads its cache -- or from `dataset=` when the
caller has it in memory already (`debias fit --report`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from debias import __version__, io, oserrors
from debias.errors import UserError
from debias.groups import column_groups, group_labels
from debias.report.headline import headline, others_sentence
from debias.report.metrics import CI_LEVEL, N_BOOT, model_metrics, training_weight_table
from debias.report.run import (
    MODEL_INFO,
    Run,
    aligned_training_rows,
    check_report_targets,
    load_run,
    load_run_dataset,
    model_label,
    model_order,
    report_paths,
)

REPORT_FORMAT_VERSION = 1
THUMBNAILS = 16  # most and least upweighted training images shown
RECONSTRUCTIONS = 8  # test images shown with their reconstructions (at most twice as many with many groups)
RECONSTRUCTIONS_PER_GROUP = 2
TRAVERSAL_DIMS = 6


def evaluate_models(run: Run, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """model -> metrics (debias.report.metrics.model_metrics) on the test split, in reading order."""
    attributes_of = {c: c[len("attr_") :] for c in run.predictions.columns if c.startswith("attr_")}
    results = {}
    for name in model_order(run.predictions["model"]):
        rows = run.predictions[run.predictions["model"].astype(str) == name]
        attributes = rows[list(attributes_of)].rename(columns=attributes_of).reset_index(drop=True)
        metrics = model_metrics(
            rows["label"].to_numpy(), rows["pred"].to_numpy(), attributes, run.group_columns, n_boot, CI_LEVEL, seed
        )
        label, uses_groups = MODEL_INFO.get(name, (name, False))
        results[name] = {"label": label, "uses_group_labels": uses_groups, **metrics}
    return results


def _weighted_mask(weights: pd.DataFrame) -> np.ndarray:
    """Rows the weighting applies to: those with a log density (faces in face detection), else all."""
    if "log_density" in weights.columns and weights["log_density"].notna().any():
        return weights["log_density"].notna().to_numpy()
    return np.ones(len(weights), dtype=bool)


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


def _clean(value):
    """JSON-safe copy: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _short_group(name: str) -> str:
    """'subgroup=dark|label=1' -> 'dark': the group columns' values, for captions."""
    values = [part.split("=", 1)[-1] for part in name.split("|") if not part.startswith("label=")]
    return " · ".join(values) if values else name


def _pictures(run: Run, dataset, rows: np.ndarray | None) -> dict:
    """Thumbnails, reconstructions and traversals as data URIs, each section None when impossible."""
    from debias.report import images

    pictures: dict = {"most": None, "least": None, "reconstructions": None, "traversals": None}
    if rows is not None:
        weights = run.weights.reset_index(drop=True)
        train = dataset.train
        names = group_labels(train.attributes.iloc[rows].reset_index(drop=True), run.group_columns, train.labels[rows])
        candidates = np.flatnonzero(_weighted_mask(weights))
        order = candidates[np.argsort(-weights["weight"].to_numpy()[candidates], kind="stable")]
        for key, chosen in (("most", order[:THUMBNAILS]), ("least", order[::-1][:THUMBNAILS])):
            pictures[key] = [
                {
                    "src": _data_uri(images.png_bytes(images.upscale(train.images[rows[i]]))),
                    "weight": float(weights["weight"].iloc[i]),
                    "group": names.iloc[i],
                    "short": _short_group(names.iloc[i]),
                    "sample_id": str(weights["sample_id"].iloc[i]),
                }
                for i in chosen
            ]
    if run.checkpoint is None:
        return pictures
    try:
        model = images.load_dbvae(run.checkpoint, run.settings)
    except Exception as exc:  # an old or foreign checkpoint costs these two sections only
        run.notes.append(
            f"The DB-VAE could not be rebuilt from checkpoint.pt ({type(exc).__name__}: {exc}); no reconstructions or traversals."
        )
        return pictures
    if dataset is not None:
        test = dataset.test
        names = group_labels(test.attributes, run.group_columns, test.labels)
        # The VAE only learned the positives' images in face detection; show those groups only.
        eligible = [
            g for g in sorted(names.unique()) if run.vae_on_all or test.labels[np.argmax(names.to_numpy() == g)] == 1
        ]
        per_group = max(1, min(RECONSTRUCTIONS_PER_GROUP, RECONSTRUCTIONS // max(1, len(eligible))))
        shown = []
        for group in eligible:
            members = np.flatnonzero(names.to_numpy() == group)
            shown.extend((group, i) for i in members[:per_group])
        shown = shown[: 2 * RECONSTRUCTIONS]
        if shown:
            index = np.array([i for _, i in shown])
            decoded = images.reconstructions(model, test.images[index])
            pictures["reconstructions"] = [
                {
                    "src": _data_uri(
                        images.png_bytes(
                            images.grid(np.stack([[images.upscale(test.images[i])], [images.upscale(rec)]]), pad=3)
                        )
                    ),
                    "group": group,
                    "short": _short_group(group),
                    "sample_id": str(test.sample_ids[i]),
                }
                for (group, i), rec in zip(shown, decoded)
            ]
    if run.latents is not None and run.latents.ndim == 2 and run.latents.shape[1] == model.latent_dim:
        latents = run.latents
        if (
            run.weights is not None
            and "label" in run.weights
            and len(run.weights) == len(latents)
            and not run.vae_on_all
        ):
            latents = latents[run.weights["label"].to_numpy() == 1]  # the latent space was fitted to the positives
        dims = images.varying_dimensions(latents, min(TRAVERSAL_DIMS, latents.shape[1]))
        strips = images.traversals(model, latents, dims)
        sd = np.nanstd(latents, axis=0)
        pictures["traversals"] = {
            "steps": [f"{t:+.0f} sd" if t else "mean" for t in images.TRAVERSAL_STEPS],
            "rows": [
                {
                    "dim": int(d),
                    "sd": float(sd[d]),
                    "src": _data_uri(
                        images.png_bytes(images.grid(np.stack([[images.upscale(tile) for tile in strip]]), pad=3))
                    ),
                }
                for d, strip in zip(dims, strips)
            ],
        }
    elif run.latents is not None:
        run.notes.append("latents.npy does not match the checkpoint's latent size, so the report has no traversals.")
    return pictures


def _figures(run: Run, models: dict, train_weights_frame: pd.DataFrame | None, group_order: list[str]) -> dict:
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
    figures = {"group_accuracy": _data_uri(plots.group_accuracy(table, labels, palette)) if len(table) else None}
    figures["weights"] = None
    if train_weights_frame is not None:
        figures["weights"] = _data_uri(plots.weight_distribution(train_weights_frame, group_order))
    figures["curves"] = None
    if run.history is not None and "model" in run.history.columns:
        figures["curves"] = _data_uri(plots.training_curves(run.history, labels, palette))
    return figures


def _flatten(settings: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, json.dumps(value) if not isinstance(value, str) else value))
    return rows


def build_report(run_dir: str | Path, *, n_boot: int = N_BOOT, seed: int = 0, dataset=None) -> tuple[dict, str]:
    """(report.json content, report.html text) for a run directory, written nowhere."""
    import fairlearn
    import jinja2

    run = load_run(run_dir)
    models = evaluate_models(run, n_boot=n_boot, seed=seed)
    text, html_sentence = headline(models)
    dataset = load_run_dataset(run, dataset) if (run.weights is not None or run.checkpoint is not None) else None
    rows = aligned_training_rows(run, dataset)

    weights_by_group, weights_frame = None, None
    if rows is not None:
        weights_by_group = training_weights_by_group(run, dataset, rows)
        train = dataset.train
        mask = _weighted_mask(run.weights)
        names = group_labels(train.attributes.iloc[rows].reset_index(drop=True), run.group_columns, train.labels[rows])
        weights_frame = pd.DataFrame(
            {"group": names.to_numpy()[mask], "weight": run.weights["weight"].to_numpy()[mask]}
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
        "models": models,
        "training_weights": weights_by_group,
        "final_weights": run.config.get("final_weights"),
        "weighting_strategy": run.config.get("weighting_strategy")
        or (run.settings.get("weighting") or {}).get("strategy"),
        "weighting_selection": run.config.get("weighting_selection"),
        "settings": run.settings,
        "dataset": run.config.get("dataset"),
        "intervals": {
            "level": CI_LEVEL,
            "n_boot": n_boot,
            "seed": seed,
            "method": "percentile bootstrap of each group's accuracy, rows resampled within the group",
        },
        "notes": run.notes,
    }
    figures = _figures(run, models, weights_frame, weighted_groups)
    pictures = _pictures(run, dataset, rows)
    report["notes"] = run.notes
    report = _clean(report)

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("debias.report", "templates"),
        autoescape=True,  # the template ends in .j2, which select_autoescape would not match
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x, digits=1: "–" if x is None else f"{100 * x:.{digits}f}%"
    env.filters["num"] = lambda x, digits=2: "–" if x is None else f"{x:.{digits}f}"
    env.filters["short"] = _short_group
    env.filters["sig"] = lambda x, digits=3: "–" if x is None else f"{x:.{digits}g}"
    # Escape first, then allow a line break after each '|' of a group name.
    env.filters["breakable"] = lambda name: Markup("|<wbr>").join(escape(str(name)).split("|"))
    redundant = {
        col
        for col, table in (report["models"][next(iter(models))]["by_column"].items() if models else [])
        if len(table) == len(test_groups)
    }
    html = env.get_template("report.html.j2").render(
        report=report,
        headline=html_sentence,
        others=others_sentence(models),
        test_groups=test_groups,
        figures=figures,
        pictures=pictures,
        settings_rows=_flatten(run.settings),
        run_name=Path(run_dir).resolve().name,
        redundant_columns=redundant,
        fairlearn_version=fairlearn.__version__,
    )
    return report, html


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    dataset=None,
    overwrite: bool = False,
) -> Path:
    """Write report.html and report.json for a run directory and return the HTML path.

    out=None writes RUN/report.html and RUN/report.json; otherwise `out` is the HTML file (its
    .json lands beside it) or a folder to hold both. An earlier report there is replaced; any
    other existing file only with `overwrite`, a file of a run folder never (check_report_targets).
    `dataset` (a debias.data.Dataset) skips reloading the data when the caller has it in memory,
    as `debias fit --report` does.
    """
    html_path, json_path = report_paths(run_dir, out)
    check_report_targets(run_dir, html_path, json_path, overwrite)
    report, html = build_report(run_dir, n_boot=n_boot, seed=seed, dataset=dataset)
    try:
        io.write_text(html_path, html)
        io.write_text(json_path, json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UserError(
            f"cannot write the report to {html_path.parent}: {oserrors.reason(exc)}; choose another --out"
        ) from None
    return html_path
