"""One translation from operating-system errors to messages a user can act on, shared by every command.

The CLI's error wrapper (debias.cli) turns any OSError that reaches it into `message(exc)`: the
path, what went wrong in words, and what to do. Code that knows more (which folder a fit keeps,
how to resume) writes its own sentence around `reason(exc)`. torch reports a checkpoint write
that ran out of disk not as an OSError but as a RuntimeError ("[enforce fail at
inline_container.cc:...] unexpected pos ..."); `torch_write_error` turns that into an OSError
saying the disk is full when it is.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

_FULL = "Free some space (`df -h` shows what is left) or write somewhere else."
_PERMISSION = "Check the permissions (`ls -ld` on the path), or choose another location."

# errno -> (what happened, what to do). Anything else is shown with the system's own text.
KNOWN = {
    errno.ENOSPC: ("no space left on the disk", _FULL),
    errno.EDQUOT: ("the disk quota is used up", _FULL),
    errno.EFBIG: ("the file is larger than the file system allows", "Write to another file system."),
    errno.ENAMETOOLONG: (
        "the path is too long for the file system",
        "Use a shorter path: most file systems allow 255 bytes per name and 4096 for a whole path.",
    ),
    errno.EACCES: ("permission denied", _PERMISSION),
    errno.EPERM: ("operation not permitted", _PERMISSION),
    errno.EROFS: ("the file system is read-only", "Choose a location on a writable disk."),
    errno.ELOOP: (
        "too many levels of symbolic links (a link that points to itself or round in a loop)",
        "Remove or repair the link (`ls -l` shows where it points).",
    ),
    errno.ENOENT: ("no such file or folder", "Check the path."),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "Check the path."),
    errno.EISDIR: ("it is a folder, not a file", "Name a file."),
    errno.EIO: (
        "input/output error (a failing disk or an unreachable network share)",
        "Check the disk or the share (`dmesg`), then try again.",
    ),
    errno.EMFILE: ("too many open files", "Raise the limit (`ulimit -n 4096`) or pass fewer --workers."),
    errno.ENFILE: ("too many open files on this machine", "Close other programs or pass fewer --workers."),
}
# What torch's file writer says when a write came up short (a full disk, a quota, an I/O error).
TORCH_WRITE_FAILURES = ("unexpected pos", "inline_container.cc", "PytorchStreamWriter failed", "file write failed")
# Below this much free space after a failed write, the disk was full.
FULL_DISK_BYTES = 64 * 2**20
# Paths longer than this are shortened in messages (a 5,000-character path hides the sentence).
LONGEST_SHOWN_PATH = 160


def shown_path(path: str | os.PathLike | bytes) -> str:
    """`path` as text for a message: whole when short, else its start and end with its length."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    if len(text) <= LONGEST_SHOWN_PATH:
        return text
    return f"{text[:70]}...{text[-60:]} ({len(text):,} characters)"


def reason(exc: OSError) -> str:
    """What went wrong, in words ("no space left on the disk"), without the path."""
    known = KNOWN.get(exc.errno)
    custom = exc.strerror and exc.errno is not None and exc.strerror != os.strerror(exc.errno)
    if known and not custom:  # a raiser's own text (torch_write_error's) says more than the errno
        return known[0]
    return exc.strerror or str(exc) or type(exc).__name__


def advice(exc: OSError) -> str:
    """What to do about it ('' when nothing specific can be said)."""
    known = KNOWN.get(exc.errno)
    return known[1] if known else ""


def message(exc: OSError) -> str:
    """One self-contained message for `exc`: the path(s), what went wrong, what to do."""
    where = ""
    if exc.filename is not None:
        where = shown_path(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {shown_path(exc.filename2)}"
        where += ": "
    tip = advice(exc)
    return f"{where}{reason(exc)}." + (f" {tip}" if tip else "")


def is_torch_write_failure(exc: BaseException) -> bool:
    """Whether `exc` is torch's RuntimeError for a file write that came up short."""
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in TORCH_WRITE_FAILURES)


def torch_write_error(exc: RuntimeError, target: str | os.PathLike) -> OSError:
    """An OSError for torch's failed write of `target`: ENOSPC when its disk is (nearly) full, else EIO."""
    folder = Path(target).parent
    try:
        full = shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    detail = str(exc).splitlines()[0] if str(exc) else "a short write"
    return OSError(errno.EIO, f"torch could not write the file ({detail})", str(target))
