"""`debias fit --resume RUN`: continue a stopped fit with its saved settings, refusing settings that differ."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from debias import io
from debias.data.columns import parse_names
from debias.data.options import RUNTIME_OPTIONS, option_flag
from debias.distributed import DistContext, session
from debias.errors import UserError
from debias.fit.config import FitConfig, validate
from debias.fit.device import resolve_device
from debias.fit.run import Fit
from debias.run_dir import CHECKPOINT, CONFIG, check_writable, lock_run_folder
from debias.run_folder import RunFolder
from debias.settings import declared, replace_at, value_at


def _data_option_values(config: FitConfig) -> dict:
    """The data options that decide which data a fit trains on, compared as the loader would read them."""
    values = {}
    for key, value in config.data_options.items():
        if key in RUNTIME_OPTIONS or value is None:
            continue
        if key == "root":
            value = str(Path(value).expanduser().resolve())
        elif key == "groups":
            value = tuple(parse_names(value))
        values[key] = value
    return values


def _shown(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_conflicts(saved: FitConfig, given: FitConfig, explicit: Iterable[str]) -> list[str]:
    """'--epochs 5 (the run has 3)' for every explicitly given setting whose value differs from the run's.

    `explicit`: names of the settings the user gave (FitConfig / WeightingSettings field names, or
    "data_options" when any data option was given). Runtime settings never conflict.
    """
    explicit = set(explicit)
    conflicts = []
    for item in declared(FitConfig):
        if item.setting.runtime or item.name not in explicit:
            continue
        mine, theirs = value_at(given, item.path), value_at(saved, item.path)
        if mine != theirs:
            conflicts.append(f"{item.setting.flag} {_shown(mine)} (the run has {_shown(theirs)})")
    if "data_options" in explicit:
        mine, theirs = _data_option_values(given), _data_option_values(saved)
        for key in sorted(set(mine) | set(theirs)):
            if key in mine and mine.get(key) != theirs.get(key):
                conflicts.append(f"{option_flag(key, mine[key])} (the run has {_shown(theirs.get(key))})")
    return conflicts


def resumed_config(saved: FitConfig, given: FitConfig | None, explicit: set[str]) -> FitConfig:
    """The saved settings, with the runtime settings (and runtime data options) the user gave explicitly."""
    if given is None:
        return saved
    runtime = {
        item.path: value_at(given, item.path)
        for item in declared(FitConfig)
        if item.setting.runtime and item.name in explicit
    }
    options = dict(saved.data_options)
    if "data_options" in explicit:
        options.update({k: v for k, v in given.data_options.items() if k in RUNTIME_OPTIONS})
    return replace(replace_at(saved, runtime), data_options=options)


def resume_fit(
    run_dir: str | Path, given: FitConfig | None = None, explicit: Iterable[str] = (), progress: bool = True
) -> dict:
    """Continue the fit in `run_dir` from its last checkpoint with its saved settings; return the results.

        result = resume_fit("runs/x")                               # what `debias fit --resume runs/x` does
        resume_fit("runs/x", FitConfig(epochs=5), {"epochs"})       # UserError unless the run has 5 epochs

    `given` holds the settings of the command line and `explicit` the names of the settings the
    user actually gave (field names: "epochs", "learning_rate", "alpha", ...; "data_options" for
    any data option): a given setting that differs from the run's is a UserError naming both
    values; the runtime ones (device, compile, eval_batch_size, amp, --cache-dir, --workers) are
    taken from `given`. The fit continues after the last model and epoch in checkpoint.pt (from
    the start, with the saved settings, when it was stopped before its first checkpoint). A run
    that already finished is not retrained: its config.json summary comes back with
    "already_complete": True. UserError when the folder is missing, not a run folder, from an
    incompatible debias, damaged, or its data changed.

    Under torchrun every process calls it and reads the run folder itself (so on several machines
    the folder must be on a filesystem they share); rank 0 writes it.
    """
    run_dir = Path(run_dir)
    explicit = set(explicit)
    with session() as ctx:
        # Held by rank 0 from before the folder is read until the fit ends: a fit still writing
        # the folder is refused rather than raced.
        lock = ctx.check(lambda: _lock_if_possible(run_dir), run=ctx.is_main)
        try:
            summary, config, device, checkpoint, created = ctx.check(
                lambda: _read_resumable(run_dir, given, explicit, ctx)
            )
            if summary is not None:
                return summary

            def prepare() -> None:
                check_writable(run_dir, "make it writable to resume the fit")
                io.remove_stale_temporaries(run_dir)  # left by a writer that was killed mid-write

            ctx.on_main(prepare)
            return Fit(
                run_dir, config, device, progress, ctx=ctx, checkpoint=checkpoint, created=created, resumed=True
            ).run()
        finally:
            if lock is not None:
                lock.release()


def _lock_if_possible(run_dir: Path):
    """The run folder's lock (debias.locks), or None where none can be made (a missing or read-only
    folder, which the checks that follow explain); UserError when another fit holds it."""
    if not run_dir.is_dir():
        return None
    try:
        return lock_run_folder(run_dir)
    except OSError:
        return None


def _read_resumable(run_dir: Path, given: FitConfig | None, explicit: set[str], ctx: DistContext):
    """(summary of a finished run, None, None, None, None), or (None, config, device, checkpoint, created) to resume."""
    if not run_dir.exists():
        raise UserError(
            f"run folder {run_dir} does not exist, so there is nothing to resume; start a fit with `debias fit --out {run_dir}`"
        )
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir} is a file; pass the run folder of an interrupted `debias fit`")
    if given is not None:
        validate(given, ctx.world_size, whole=False)
    has_checkpoint = (run_dir / CHECKPOINT).is_file()
    if not has_checkpoint and not (run_dir / CONFIG).is_file():
        raise UserError(
            f"{run_dir} holds neither {CHECKPOINT} nor {CONFIG}, so it is not the run folder of a `debias fit`; "
            "check the path, or start a new fit with --out"
        )
    folder = RunFolder(run_dir)
    config_json = folder.config if (run_dir / CONFIG).is_file() else None
    checkpoint = folder.checkpoint if has_checkpoint else None
    saved = folder.checkpoint_config if has_checkpoint else folder.fit_config
    conflicts = settings_conflicts(saved, given, explicit) if given is not None else []
    if conflicts:
        raise UserError(
            f"--resume {run_dir} continues the fit with the settings it was started with, but "
            + "; ".join(conflicts)
            + ". Drop those options to resume, or start a new fit with --out NEW_FOLDER to change them."
        )
    if config_json is not None and "results" in config_json:
        summary = dict(config_json, run_dir=str(run_dir), already_complete=True)
        return summary, None, None, None, None
    config = resumed_config(saved, given, explicit)
    validate(config, ctx.world_size)
    device = resolve_device(config.device, ctx)
    created = config_json.get("created") if config_json else None
    return None, config, device, checkpoint, created
