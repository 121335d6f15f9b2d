"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash, Ctrl-C or kill -9 mid-write leaves either the old file or the new one, never a truncated
file; at worst a hidden `.NAME.XXXX.tmp` stays behind next to it (`debias fit --resume` removes
those in its run folder). numpy, pandas and torch are imported by the writers that need them, so
importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TEMP_SUFFIX = ".tmp"


def temp_prefix(target: str | os.PathLike) -> str:
    """The name prefix of `target`'s temporary files (they end in TEMP_SUFFIX)."""
    return f".{Path(target).name}."


def _final_mode(target: Path) -> int:
    # mkstemp makes 0600 files; give the result the mode a plain open() would: the replaced
    # file's mode, or 0666 minus the umask for a new file.
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable (ext4 and others can otherwise lose it on power loss).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; when the block ends without error it replaces `target`.

        with atomic_path("runs/x/weights.csv") as tmp:
            frame.to_csv(tmp, index=False)     # readers see the old file until this succeeds

    An exception (or KeyboardInterrupt) inside the block removes the temporary file and leaves
    `target` as it was. The new file is flushed to disk before the rename.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            if exc.filename is not None and Path(os.fsdecode(exc.filename)) == tmp_path:
                exc.filename = str(target)  # the file the user knows, not its hidden temporary
            raise
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _final_mode(target))
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write `text` to `target` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, data: dict) -> None:
    """Write `data` as indented JSON atomically."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(target: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV (no index) atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


def write_npy(target: str | os.PathLike, array: np.ndarray) -> None:
    """Save a numpy array atomically."""
    import numpy as np

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_torch(target: str | os.PathLike, obj: dict) -> None:
    """torch.save `obj` atomically (keep it to tensors and plain types so weights_only loading works).

    torch reports a short write (a full disk) as a RuntimeError; it comes out as an OSError
    (ENOSPC when the disk is full), like every other writer's.
    """
    import torch

    from debias import oserrors

    with atomic_path(target) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            if not oserrors.is_torch_write_failure(exc):
                raise
            raise oserrors.torch_write_error(exc, target) from exc


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` (`.NAME.XXXX.tmp`); return them.

    Only call this when no other process is writing into `folder`.
    """
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
