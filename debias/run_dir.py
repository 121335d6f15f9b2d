"""The run folder's layout: its file names, its format version, its record of what debias wrote, and claiming it.

`debias fit` stamps `format_version` into config.json and checkpoint.pt; a folder written by an
incompatible debias gets one clear message instead of a KeyError deep inside. Every command that
writes into a run folder records the file in files.json, so a new fit over the folder
(`--overwrite`) removes exactly what debias wrote there and nothing of the user's. Reading and
writing the files themselves is `debias.run_folder.RunFolder`'s job; this module needs neither
torch nor pandas.

    config.json            resolved settings, dataset description, weight statistics, results
    checkpoint.pt          state dicts of every model (loads with torch.load(weights_only=True))
    weights.csv            sample_id, weight (mean 1), log_density, label: one row per training sample
    latents.npy            final latent means of the training set (float32 [N, k]), for re-weighting
    predictions_test.csv   test-split predictions of every model, with ids and ground-truth attributes
    predictions_valid.csv  the same on the validation split
    history.csv            one row per model and epoch: losses, accuracies, weight statistics
    early_probs.npy        (strategies that use errors) the uniform baseline's P(label = 1) on the
                           training split after the epoch config.json names ("early_errors")
    files.json             every file a debias command wrote into the folder, and which command
    report.html / .json    written by `debias fit --report` or `debias report`
    groups.csv             the report's per-group table in long format, one row per model and group
    .debias.lock           only while a fit or resume writes the folder (debias.locks)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from debias import __version__, io, locks, oserrors
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
REPORT_GROUPS = "groups.csv"
# The record of what debias wrote into the folder (see `debias_files`).
RECORD = "files.json"
# Held by the fit or resume writing the folder (debias.locks); removed when it ends.
LOCK = ".debias.lock"

# Who wrote a file, as files.json says.
BY_FIT = "debias fit"
BY_WEIGHTS = "debias weights"
BY_REPORT = "debias report"
# Files of a run folder from before files.json, recorded when a command first writes into it.
BY_EARLIER = "debias, before files.json"


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
PROTECTED_FILES = frozenset(FIT_FILES) - {WEIGHTS} | {RECORD}
REPORT_FILES = (REPORT_HTML, REPORT_JSON, REPORT_GROUPS)
# The keys of the record `debias weights` writes beside a weights file (NAME.json for NAME.csv).
WEIGHTS_RECORD_KEYS = frozenset({"path", "source_run", "settings", "stats"})


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


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or something else."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_complete(run_dir: Path) -> bool:
    """Whether config.json holds results, which a fit writes last of all."""
    config = read_json_object(run_dir / CONFIG)
    return config is not None and "results" in config


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` holds a debias run: a files.json record, or a config.json a fit wrote."""
    if read_record(folder) is not None:
        return True
    config = read_json_object(folder / CONFIG)
    return config is not None and "format_version" in config and ("settings" in config or "status" in config)


# files.json: name -> {"by": the command, "sha256": for weights files, "weighting": settings of `debias weights`}


def _plain_name(name) -> bool:
    # A record names files inside its own folder only: a crafted "../x" must never be removed.
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name


def read_record(folder: Path) -> dict[str, dict] | None:
    """files.json's entries (file name -> entry), or None when `folder` has no valid record."""
    data = read_json_object(Path(folder) / RECORD)
    if data is None or data.get("written_by") != "debias" or not isinstance(data.get("files"), dict):
        return None
    return {name: entry for name, entry in data["files"].items() if _plain_name(name) and isinstance(entry, dict)}


def write_record(folder: Path, entries: dict[str, dict]) -> None:
    """Replace files.json with `entries` (atomically)."""
    io.write_json(
        Path(folder) / RECORD, {"written_by": "debias", "format_version": RUN_FORMAT_VERSION, "files": entries}
    )


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unchanged(path: Path, entry: dict) -> bool:
    """Whether `path` still holds what debias wrote (by the digest files.json keeps for weights files)."""
    return "sha256" not in entry or (path.is_file() and file_digest(path) == entry["sha256"])


def _is_weights_record(path: Path, csv_name: str) -> bool:
    record = read_json_object(path)
    return record is not None and WEIGHTS_RECORD_KEYS <= record.keys() and Path(str(record["path"])).name == csv_name


def debias_files(folder: Path) -> list[str]:
    """Names of the files in `folder` that debias wrote there and that still hold what it wrote.

    With a files.json: what it records (a weights file changed since is the user's now). A run
    folder from before files.json: the files a fit and a report write, and every `NAME.csv` with
    the `NAME.json` record `debias weights` writes beside it. Any other folder: none.
    """
    folder = Path(folder)
    record = read_record(folder)
    if record is not None:
        names = [
            name for name, entry in record.items() if (folder / name).is_file() and unchanged(folder / name, entry)
        ]
        return [*names, RECORD]
    if not is_run_folder(folder):
        return []
    names = [name for name in (*FIT_FILES, *REPORT_FILES) if (folder / name).is_file()]
    for csv in sorted(folder.glob("*.csv")):
        if _is_weights_record(csv.with_suffix(".json"), csv.name):
            names += [csv.name, csv.with_suffix(".json").name]
    return list(dict.fromkeys(names))


def foreign_files(folder: Path, names: Iterable[str]) -> list[str]:
    """Those of `names` that exist in `folder` but that debias did not write (or that were changed since)."""
    ours = set(debias_files(folder))
    return [name for name in names if (Path(folder) / name).exists() and name not in ours]


def remove_debias_files(folder: Path) -> list[str]:
    """Delete the files debias wrote into `folder` (debias_files), files.json last; return their names.

    Only call this while holding the folder's lock, before a new fit writes it.
    """
    names = debias_files(folder)
    for name in sorted(names, key=lambda n: n == RECORD):
        (Path(folder) / name).unlink(missing_ok=True)
    return names


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

    UserError when another fit holds the folder, or it already holds files and not `overwrite`, or
    (with `overwrite`) it holds a file of a fit's name that debias did not write, which the fit would
    replace (checked while holding the lock, so a fit that finishes meanwhile is not overwritten).
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
        foreign = foreign_files(run_dir, (*FIT_FILES, RECORD))
        if foreign:
            raise UserError(
                f"--out {run_dir} holds {', '.join(foreign)}, which no debias command wrote there (or which was changed "
                "since); --overwrite removes only what debias wrote, and the fit would replace it. Move it away or "
                "choose another --out"
            )
    except BaseException:
        lock.release()
        raise
    return run_dir, lock
