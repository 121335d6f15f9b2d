"""`debias weights RUN`: new weights from a run's saved latents, without retraining.

A run folder keeps the latent means of its training set under the final model (`latents.npy`,
rows in the order of `weights.csv`), the early classifier's predictions when a strategy used
errors (`early_probs.npy`) and the training rows' true groups (`group_<attr>` columns of
weights.csv). The weights are a cheap function of those, so any strategy and any of its settings
can be tried in seconds; training with the new file is then up to the user's pipeline.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from debias.errors import UserError
from debias.groups import column_groups, require_group_values
from debias.run_dir import BY_WEIGHTS, CONFIG, EARLY_PROBS, LATENTS, PROTECTED_FILES, WEIGHTS
from debias.run_folder import RunFolder, output_folder
from debias.weight_files import GROUP_PREFIX, group_columns
from debias.weighting import (
    AUTO,
    STRATEGIES,
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


def _resolve_output(
    run_dir: Path, out: str | os.PathLike | None, settings: WeightingSettings, overwrite: bool, changed: tuple[str, ...]
) -> Path:
    target = Path(out) if out is not None else run_dir / default_output_name(settings, changed)
    if target.suffix.lower() != ".csv":
        raise UserError(f"--out {target} must end in .csv")
    if target.exists() and target.is_dir():
        raise UserError(f"--out {target} is a folder; name a .csv file")
    record = settings_path(target)
    if RunFolder.beside(target) is not None and {target.name, record.name} & PROTECTED_FILES:
        raise UserError(
            f"--out {target} would replace a file of the run in {target.parent} "
            f"({', '.join(sorted({target.name, record.name} & PROTECTED_FILES))}); choose another name"
        )
    in_run = target.resolve().parent == run_dir.resolve()
    if in_run and target.name == WEIGHTS and (out is None or not overwrite):
        raise UserError(f"refusing to replace the fit's {target}; pass --out naming it and --overwrite to do so")
    if not overwrite:
        for path in (target, record):
            if path.exists():
                raise UserError(
                    f"{path} already exists (`debias weights` writes {target.name} and the record of how it was made, "
                    f"{record.name}, side by side); pass --overwrite to replace it or choose another --out"
                )
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
        raise UserError(
            f"recompute_weights() got settings it does not know: {', '.join(unknown)}; "
            f"the settings are: {', '.join(known_order())}"
        )
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; `debias fit --out {run_dir}` makes one")
    folder = RunFolder(run_dir)
    folder.require(WEIGHTS, LATENTS, then=f"run `debias weights {run_dir}`")
    fit_settings, vae_on_all = folder.weighting, folder.vae_on_all
    if overrides.get("cap") is not None and no_cap:
        raise UserError("pass either --cap or --no-cap, not both")
    changed = {k: v for k, v in overrides.items() if v is not None}
    if changed.get("strategy") == AUTO:
        raise UserError(
            "--weighting auto chooses a strategy by training a short run of each, which `debias weights` does not do; "
            f"name a strategy ({', '.join(STRATEGIES)}), or fit again with `debias fit --weighting auto`"
        )
    problem = unread_settings_problem([changed.get("strategy", fit_settings.strategy)], changed)
    if problem:
        raise UserError(problem)
    if no_cap:
        changed["cap"] = None
    settings = replace(fit_settings, **changed)
    try:
        validate(settings)
    except ValueError as exc:
        raise UserError(f"bad weighting setting: {exc}") from None

    frame = folder.weights
    if "label" not in frame.columns:
        raise UserError(f"{run_dir / WEIGHTS} has no `label` column; it was not written by `debias fit`")
    latents = folder.latents
    labels = frame["label"].to_numpy(dtype=np.int64, copy=True)
    attributes = group_columns(frame)
    early_probs = _early_probs(folder, settings, fit_settings) if needs_errors(settings.strategy) else None
    groups = _groups(run_dir, attributes, settings.strategy) if needs_groups(settings.strategy) else None

    target = _resolve_output(run_dir, out, settings, overwrite, tuple(n for n in known_order() if n in changed))
    weights, score = training_weights(
        torch.from_numpy(latents), torch.from_numpy(labels), settings, vae_on_all, early_probs, groups
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
    columns = (frame["sample_id"].to_numpy(), weights.numpy())
    named = {"log_density": (-score).numpy(), "labels": labels, "groups": attributes}
    # Into a run folder, both are recorded there (files.json): a new fit over it removes them.
    with output_folder(target.parent) as destination:
        destination.write_weights(target.name, *columns, by=BY_WEIGHTS, weighting=result["settings"], **named)
        destination.write_json(settings_path(target).name, result, by=BY_WEIGHTS)
    return result


def known_order() -> tuple[str, ...]:
    """WeightingSettings' fields in declaration order (the order output names list changed settings in)."""
    return tuple(WeightingSettings.__dataclass_fields__)


def _refit(run_dir: Path, options: str) -> str:
    return f"`debias fit --config {run_dir / CONFIG} {options} --out NEW_FOLDER`"


def _early_probs(folder: RunFolder, settings: WeightingSettings, fit_settings: WeightingSettings) -> np.ndarray:
    """The fit's early classifier's P(label = 1) per row, checked against what `settings` asks for."""
    run_dir, early_path = folder.path, folder.path / EARLY_PROBS
    if not early_path.is_file():
        raise UserError(
            f"the {settings.strategy} weighting needs the early classifier's predictions on the training split "
            f"({early_path}), which the fit kept only for strategies that use errors (it used {fit_settings.strategy}); "
            f"make them with a new fit: {_refit(run_dir, f'--weighting {settings.strategy}')}"
        )
    epoch = (folder.config.get("early_errors") or {}).get("epoch")
    # The fit's own --errors-epoch, or the epoch it took from there on (the first informative one), both
    # describe the predictions saved; any other epoch's classifier was never kept.
    if settings.errors_epoch not in (fit_settings.errors_epoch, epoch):
        made = f"after epoch {epoch}" if epoch is not None else f"from --errors-epoch {fit_settings.errors_epoch}"
        raise UserError(
            f"--errors-epoch {settings.errors_epoch}: {early_path} holds the early classifier's predictions {made}; "
            f"predictions after another epoch need a new fit: "
            f"{_refit(run_dir, f'--weighting {settings.strategy} --errors-epoch {settings.errors_epoch}')}"
        )
    return folder.early_probs


def _groups(run_dir: Path, attributes: pd.DataFrame, strategy: str) -> np.ndarray:
    """Each row's true group from the group_<attr> columns of weights.csv."""
    if attributes.empty or len(attributes.columns) == 0:
        raise UserError(
            f"the {strategy} weighting needs the true group of every training row, the {GROUP_PREFIX}<attribute> "
            f"columns of {run_dir / WEIGHTS}, which this run lacks (a fit writes them when its data has group "
            f"columns); make them with a new fit: {_refit(run_dir, f'--weighting {strategy} --groups ATTR[,ATTR]')}"
        )
    require_group_values({"training": attributes}, list(attributes.columns), str(run_dir / WEIGHTS))
    return column_groups(attributes, list(attributes.columns)).to_numpy(str)
