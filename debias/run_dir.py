"""The run folder: its file names, its format version, creating one and reading its config.json.

`debias fit` stamps `format_version` into config.json and checkpoint.pt. Anything that reads a run
folder (resuming a fit, `debias weights`, `debias report`) calls `check_format_version` or
`read_run_config` first, so a folder written by an incompatible debias gets one clear message
instead of a KeyError deep inside. This module needs no training code.

    config.json            resolved settings, dataset description, weight statistics, results
    checkpoint.pt          state dicts of every model (loads with torch.load(weights_only=True))
    weights.csv            sample_id, weight (mean 1), log_density, label: one row per training sample
    latents.npy            final latent means of the training set (float32 [N, k]), for re-weighting
    predictions_test.csv   test-split predictions of every model, with ids and ground-truth attributes
    predictions_valid.csv  the same on the validation split
    history.csv            one row per model and epoch: losses, accuracies, weight statistics
    early_probs.npy        (strategies that use errors) the uniform baseline's P(label = 1) on the
                           training split after the epoch config.json names ("early_errors")
    report.html / .json    written by `debias fit --report` or `debias report`
    .debias.lock           only while a fit or resume writes the folder (debias.locks)
    groups.csv             the report's per-group table in long format, one row per model and group
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from debias import __version__, locks, oserrors
from debias.errors import UserError

# Bump when a file of the run folder changes meaning or layout (renamed keys or columns, another
# checkpoint structure); adding a key that readers may ignore keeps the version.
RUN_FORMAT_VERSION = 1

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.csv"
LATENTS = "latents.npy"
HISTORY = "history.csv"
EARLY_PROBS = "early_probs.npy"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
# Held by the fit or resume writing the folder (debias.locks); removed when it ends.
LOCK = ".debias.lock"
REPORT_GROUPS = "groups.csv"


def predictions_file(split: str) -> str:
    """predictions_test.csv / predictions_valid.csv."""
    return f"predictions_{split}.csv"


# What `debias fit` writes (EARLY_PROBS only for strategies that use errors).
FIT_FILES = (
    CHECKPOINT,
    CONFIG,
    WEIGHTS,
    LATENTS,
    predictions_file("test"),
    predictions_file("valid"),
    HISTORY,
    EARLY_PROBS,
)
# Files another command must never replace: everything a fit wrote but the weights, which
# `debias weights --out RUN/weights.csv --overwrite` may replace on purpose.
PROTECTED_FILES = frozenset(FIT_FILES) - {WEIGHTS}
REPORT_FILES = (REPORT_HTML, REPORT_JSON, REPORT_GROUPS)
# What `debias weights` writes into the run folder by default (recompute.default_output_name):
# derived from this run's latents, so a new fit over the folder (--overwrite) removes them too.
DERIVED_PATTERNS = ("weights-*.csv", "weights-*.json")


def derived_files(run_dir: Path) -> list[Path]:
    """The files `debias weights` wrote into `run_dir` under its default names."""
    return sorted(path for pattern in DERIVED_PATTERNS for path in run_dir.glob(pattern) if path.is_file())


def check_format_version(found, source: str | os.PathLike, written_by=None) -> None:
    """UserError unless `found` (the format_version read from `source`) is RUN_FORMAT_VERSION."""
    if found == RUN_FORMAT_VERSION and not isinstance(found, bool):
        return
    by = f", written by debias {written_by}" if written_by else ""
    what = "has no format_version" if found is None else f"has run format {found!r}"
    raise UserError(
        f"{source} {what}{by}: it comes from an incompatible version of debias (this is debias {__version__}, "
        f"which reads run format {RUN_FORMAT_VERSION}). Open it with the debias version that wrote it, "
        "or start a new fit with `debias fit --out NEW_FOLDER`."
    )


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """config.json of `run_dir` as a dict, after checking that this debias can read the folder.

        config = read_run_config("runs/x")
        config["settings"]["epochs"], config.get("status")   # "running" while a fit is under way

    UserError when the folder or its config.json is missing, the JSON is damaged, or the run
    format differs from RUN_FORMAT_VERSION.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; pass a folder written by `debias fit`")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} has no {CONFIG}, so it is not a `debias fit` run folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); the run folder is damaged"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({exc}); the run folder is damaged") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} does not hold a JSON object; the run folder is damaged")
    check_format_version(config.get("format_version"), path, config.get("debias_version"))
    return config


def is_complete(run_dir: Path) -> bool:
    """Whether config.json holds results, which a fit writes last of all."""
    try:
        config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "results" in config


def default_run_dir(data: str) -> Path:
    """runs/<timestamp>-<dataset> under the current folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{Path(data).stem}"


def check_writable(run_dir: Path, what_to_do: str = "choose another --out") -> None:
    """Create `run_dir` if needed and prove a file can be written in it; UserError saying `what_to_do` otherwise."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # A name of this process's own: two fits starting together must not remove each other's probe.
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write to output folder {oserrors.shown_path(run_dir)}: {oserrors.reason(exc)}; {what_to_do}"
        ) from None


def lock_run_folder(run_dir: Path) -> locks.Lock:
    """Hold `run_dir` for one fit or resume (debias.locks); UserError naming the process that holds it already.

    OSError when the lock file cannot be created (the folder is missing or read-only).
    """
    try:
        return locks.acquire(run_dir / LOCK)
    except locks.LockBusy as busy:
        raise UserError(
            f"run folder {run_dir} is in use by another debias fit: {locks.describe_holder(busy.holder)}. "
            "Wait for it to finish, or stop it (it can be continued later with "
            f"`debias fit --resume {run_dir}`); to train something else now, choose another --out."
        ) from None


def prepare_run_dir(out: str | Path | None, data: str, overwrite: bool) -> tuple[Path, locks.Lock]:
    """Create the run folder and lock it for this fit (release the lock when the fit ends).

    UserError when another fit holds the folder, or it already holds files and not `overwrite`
    (checked while holding the lock, so a fit that finishes meanwhile is not overwritten).
    """
    run_dir = Path(out) if out is not None else default_run_dir(data)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file, not a folder; choose another path")
    check_writable(run_dir)
    lock = lock_run_folder(run_dir)
    try:
        if not overwrite and any(path.name != LOCK for path in run_dir.iterdir()):
            unfinished = (run_dir / CONFIG).is_file() and not is_complete(run_dir)
            hint = f", or `debias fit --resume {run_dir}` to continue the unfinished fit in it" if unfinished else ""
            raise UserError(
                f"output folder {run_dir} already exists and is not empty; choose another --out or pass --overwrite{hint}"
            )
    except BaseException:
        lock.release()
        raise
    return run_dir, lock
