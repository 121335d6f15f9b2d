"""A run folder's format version, and reading its config.json checked against it.

`debias fit` stamps `format_version` into config.json and checkpoint.pt. Anything that reads a run
folder (resuming a fit, `debias weights`, `debias report`) calls `check_format_version` or
`read_run_config` first, so a folder written by an incompatible debias gets one clear message
instead of a KeyError deep inside. This module needs no training code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from debias import __version__
from debias.errors import UserError

# Bump when a file of the run folder changes meaning or layout (renamed keys or columns, another
# checkpoint structure); adding a key that readers may ignore keeps the version.
RUN_FORMAT_VERSION = 1


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
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no config.json, so it is not a `debias fit` run folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); the run folder is damaged") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({exc}); the run folder is damaged") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} does not hold a JSON object; the run folder is damaged")
    check_format_version(config.get("format_version"), path, config.get("debias_version"))
    return config
