"""`debias weights RUN`: new weights from a run's saved latents, without retraining.

A run folder keeps the latent means of its training set under the final model (`latents.npy`,
rows in the order of `weights.csv`), the early classifier's predictions when a strategy used
errors (`early_probs.npy`) and the training rows' true groups (`group_<attr>` columns of
weights.csv). The weights are a cheap function of those, so any strategy and any of its settings
can be tried in seconds; training with the new file is then up to the user's pipeline.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from debias import io
from debias.errors import UserError
from debias.groups import column_groups
from debias.run_dir import CONFIG, EARLY_PROBS, LATENTS, PROTECTED_FILES, WEIGHTS, read_run_config
from debias.weight_files import GROUP_PREFIX, group_columns, read_weights_frame, write_weights
from debias.weighting import (
    AUTO,
    LEGACY_STRATEGY,
    WeightingSettings,
    caption_values,
    get_strategy,
    needs_errors,
    needs_groups,
    training_weights,
    unread_settings_problem,
    validate,
    weight_summary,
)


def default_output_name(settings: WeightingSettings, changed: tuple[str, ...] = ()) -> str:
    """weights-{the strategy's file_stem}[-cap{C}].csv, e.g. weights-alpha0.01-bins10-geometric.csv for the
    histograms; for a strategy without one, weights-{strategy}[-{setting}{value} for each `changed`
    setting][-cap{C}].csv, e.g. weights-joint-joint-dims8.csv."""
    cap = f"-cap{settings.cap:g}" if settings.cap is not None else ""
    stem = get_strategy(settings.strategy).file_stem
    if stem:
        return f"weights-{stem.format(**caption_values(settings))}{cap}.csv"
    parts = [
        f"-{name.replace('_', '-')}{_shown(getattr(settings, name))}"
        for name in changed
        if name not in ("strategy", "cap")
    ]
    return "weights-" + settings.strategy.replace("+", "-") + "".join(parts) + cap + ".csv"


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_path(weights_path: Path) -> Path:
    """Where the resolved settings of a recomputed weights file are written: beside it, as .json."""
    return weights_path.with_suffix(".json")


def _fit_settings(config: dict, path: Path) -> tuple[WeightingSettings, bool]:
    try:
        vae_on_all = config["dataset"]["vae_on_all"]
    except (KeyError, TypeError):
        raise UserError(f"{path} has no dataset.vae_on_all; it was not written by `debias fit`") from None
    if not isinstance(vae_on_all, bool):
        raise UserError(f"{path}: dataset.vae_on_all must be true or false, got {vae_on_all!r}")
    saved = dict((config.get("settings") or {}).get("weighting") or {})
    # Runs written before there were strategies to choose from used the histograms, not today's default.
    saved.setdefault("strategy", LEGACY_STRATEGY)
    if saved.get("strategy") == AUTO:
        # An auto fit's weights.csv comes from the strategy it chose.
        chosen = config.get("weighting_strategy") or (config.get("weighting_selection") or {}).get("chosen")
        if chosen is None:
            raise UserError(
                f"{path}: the fit chose its weighting strategy by measurement but did not record the choice; re-run `debias fit`"
            )
        saved["strategy"] = chosen
    known = set(WeightingSettings.__dataclass_fields__)
    return WeightingSettings.from_record({k: v for k, v in saved.items() if k in known}), vae_on_all


def _resolve_output(
    run_dir: Path, out: str | os.PathLike | None, settings: WeightingSettings, overwrite: bool, changed: tuple[str, ...]
) -> Path:
    target = Path(out) if out is not None else run_dir / default_output_name(settings, changed)
    if target.suffix.lower() != ".csv":
        raise UserError(f"--out {target} must end in .csv")
    if target.exists() and target.is_dir():
        raise UserError(f"--out {target} is a folder; name a .csv file")
    in_run = target.resolve().parent == run_dir.resolve()
    if in_run and {target.name, settings_path(target).name} & PROTECTED_FILES:
        raise UserError(
            f"--out {target} would replace a file of the run ({', '.join(sorted(PROTECTED_FILES))}); choose another name"
        )
    if in_run and target.name == WEIGHTS and (out is None or not overwrite):
        raise UserError(f"refusing to replace the fit's {target}; pass --out naming it and --overwrite to do so")
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; pass --overwrite to replace it or choose another --out")
    return target


def recompute_weights(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    no_cap: bool = False,
    **overrides,
) -> dict:
    """Recompute a run's weights from its latents.npy with other settings; write them; return a summary.

        result = recompute_weights("runs/x", alpha=0.1, bins=20)
        print(result["path"], result["stats"]["ess"])      # runs/x/weights-alpha0.1-bins20-geometric.csv
        recompute_weights("runs/x", strategy="groups")     # AIF360 reweighing by the run's group columns
        SampleWeights.load(result["path"])                  # ready for a pipeline

    `overrides` are WeightingSettings fields (strategy, alpha, bins, combine, cap, errors_upweight,
    errors_epoch, joint_method, ...); those left out or None are the fit's (config.json's
    settings.weighting; an auto fit's chosen strategy); `no_cap` drops a cap the fit used.
    Strategies that use errors read the run's early_probs.npy (the early classifier of the epoch
    config.json's early_errors names: another --errors-epoch needs a new fit); the group
    strategies read the group_<attr> columns of weights.csv. When the run lacks what a strategy
    needs, the UserError gives the `debias fit --config RUN/config.json ...` command that makes
    it. Scoring follows dataset.vae_on_all exactly as in the fit (face detection: only faces are
    scored by the latent strategies, non-faces keep weight 1). The output has weights.csv's
    columns and is written atomically, by default to RUN/weights-alpha{A}-bins{B}-{combine}.csv
    (see default_output_name); the fit's own weights.csv is replaced only when `out` names it and
    `overwrite` is set. The returned summary is also written beside it (same name, .json), so the
    file says how it was made. Returns path, settings, stats (weight_summary of the new weights),
    fit_stats (of the fit's weights.csv) and rows.
    """
    run_dir = Path(run_dir)
    known = set(WeightingSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"recompute_weights() got settings it does not know: {', '.join(unknown)}")
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; `debias fit --out {run_dir}` makes one")
    needed = [name for name in (WEIGHTS, LATENTS, CONFIG) if not (run_dir / name).is_file()]
    if needed:
        raise UserError(
            f"{run_dir} is not a complete run folder: missing {', '.join(needed)}; point at a folder written by `debias fit`"
        )
    config_path = run_dir / CONFIG
    run_config = read_run_config(run_dir)
    fit_settings, vae_on_all = _fit_settings(run_config, config_path)
    if overrides.get("cap") is not None and no_cap:
        raise UserError("pass either --cap or --no-cap, not both")
    changed = {k: v for k, v in overrides.items() if v is not None}
    problem = unread_settings_problem([changed.get("strategy", fit_settings.strategy)], changed)
    if problem:
        raise UserError(problem)
    if no_cap:
        changed["cap"] = None
    settings = replace(fit_settings, **changed)
    if isinstance(settings.alpha, float) and not math.isfinite(settings.alpha):
        raise UserError(f"--alpha must be a finite number >= 0, got {settings.alpha}")
    try:
        validate(settings)
    except ValueError as exc:
        raise UserError(f"bad weighting setting: {exc}") from None

    frame = read_weights_frame(run_dir / WEIGHTS)
    if "label" not in frame.columns:
        raise UserError(f"{run_dir / WEIGHTS} has no `label` column; it was not written by `debias fit`")
    latents = _read_latents(run_dir, len(frame))
    labels = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{run_dir / WEIGHTS}: the `label` column must hold 0 or 1 in every row")
    labels = labels.astype(np.int64)
    attributes = group_columns(frame)
    early_probs = (
        _early_probs(run_dir, run_config, settings, fit_settings, len(frame))
        if needs_errors(settings.strategy)
        else None
    )
    groups = _groups(run_dir, attributes, settings.strategy) if needs_groups(settings.strategy) else None

    target = _resolve_output(run_dir, out, settings, overwrite, tuple(n for n in known_order() if n in changed))
    weights, score = training_weights(
        torch.from_numpy(latents), torch.from_numpy(labels), settings, vae_on_all, early_probs, groups
    )
    write_weights(
        target,
        frame["sample_id"].to_numpy(),
        weights.numpy(),
        log_density=(-score).numpy(),
        labels=labels,
        groups=attributes,
    )
    result = {
        "path": str(target),
        "source_run": str(run_dir),
        "rows": len(frame),
        "settings": settings.to_dict(),
        "uses_group_labels": needs_groups(settings.strategy),
        "vae_on_all": vae_on_all,
        "stats": weight_summary(weights),
        "fit_settings": fit_settings.to_dict(),
        "fit_stats": weight_summary(torch.tensor(frame["weight"].to_numpy(dtype=np.float64))),
    }
    io.write_json(settings_path(target), result)
    return result


def known_order() -> tuple[str, ...]:
    """WeightingSettings' fields in declaration order (the order output names list changed settings in)."""
    return tuple(WeightingSettings.__dataclass_fields__)


def _read_latents(run_dir: Path, rows: int) -> np.ndarray:
    try:
        latents = np.load(run_dir / LATENTS, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read {run_dir / LATENTS} ({exc}); the run folder is damaged") from None
    if latents.ndim != 2 or len(latents) != rows:
        raise UserError(
            f"{run_dir / LATENTS} has shape {latents.shape} but weights.csv has {rows} rows; "
            "they must come from the same fit (one latent row per weights.csv row)"
        )
    if not np.isfinite(latents).all():
        raise UserError(f"{run_dir / LATENTS} holds non-finite values; re-run `debias fit`")
    return latents


def _refit(run_dir: Path, options: str) -> str:
    return f"`debias fit --config {run_dir / CONFIG} {options} --out NEW_FOLDER`"


def _early_probs(
    run_dir: Path, run_config: dict, settings: WeightingSettings, fit_settings: WeightingSettings, rows: int
) -> np.ndarray:
    """The fit's early classifier's P(label = 1) per row, checked against what `settings` asks for."""
    early_path = run_dir / EARLY_PROBS
    if not early_path.is_file():
        raise UserError(
            f"the {settings.strategy} weighting needs the early classifier's predictions on the training split "
            f"({early_path}), which the fit kept only for strategies that use errors (it used {fit_settings.strategy}); "
            f"make them with a new fit: {_refit(run_dir, f'--weighting {settings.strategy}')}"
        )
    epoch = (run_config.get("early_errors") or {}).get("epoch")
    # The fit's own --errors-epoch, or the epoch it took from there on (the first informative one), both
    # describe the predictions saved; any other epoch's classifier was never kept.
    if settings.errors_epoch not in (fit_settings.errors_epoch, epoch):
        made = f"after epoch {epoch}" if epoch is not None else f"from --errors-epoch {fit_settings.errors_epoch}"
        raise UserError(
            f"--errors-epoch {settings.errors_epoch}: {early_path} holds the early classifier's predictions {made}; "
            f"predictions after another epoch need a new fit: "
            f"{_refit(run_dir, f'--weighting {settings.strategy} --errors-epoch {settings.errors_epoch}')}"
        )
    try:
        early_probs = np.load(early_path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read {early_path} ({exc}); the run folder is damaged") from None
    if early_probs.shape != (rows,) or not np.isfinite(early_probs).all():
        raise UserError(f"{early_path} must hold one finite probability per weights.csv row; the run folder is damaged")
    return early_probs


def _groups(run_dir: Path, attributes: pd.DataFrame, strategy: str) -> np.ndarray:
    """Each row's true group from the group_<attr> columns of weights.csv."""
    if attributes.empty or len(attributes.columns) == 0:
        raise UserError(
            f"the {strategy} weighting needs the true group of every training row, the {GROUP_PREFIX}<attribute> "
            f"columns of {run_dir / WEIGHTS}, which this run lacks (a fit writes them when its data has group "
            f"columns); make them with a new fit: {_refit(run_dir, f'--weighting {strategy} --groups ATTR[,ATTR]')}"
        )
    return column_groups(attributes, list(attributes.columns)).to_numpy(str)
