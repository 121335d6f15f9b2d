"""Exclusive locks that one process holds at a time: on a run folder for a fit, on a cache build.

A lock is a small file naming its holder (host, pid, start time, command) plus an OS advisory
lock (fcntl.flock) on that file. The OS lock is what counts: the kernel drops it when the
holding process ends, however it ends (kill -9, a crash, power loss), so a lock file left behind
by a dead process is simply taken over by the next one. No pid is ever tested for life: a pid
means nothing in another container's pid namespace or on another machine sharing the folder.
The file's text only names the holder in messages. On NFS, Linux turns flock into a byte-range
lock that the server arbitrates between machines (and NFSv4 drops it when the holder's client
stops renewing its lease).

Releasing removes the file while still holding the lock. A process that opened the old file just
before finds, once it holds the lock, that the path no longer names its file, and starts over:
so two processes can never both hold "the" lock of one path.

On a platform without fcntl (Windows) the lock file still names the holder but nothing is
enforced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class LockBusy(Exception):
    """Another live process holds the lock; `holder` is what its lock file says (may be empty)."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {describe_holder(holder)}")


class Lock:
    """A held lock; `release()` (or leaving a `with` block) gives it up and removes its file."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @property
    def held(self) -> bool:
        """Whether this process still holds it."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the OS lock; calling it again does nothing."""
        if self._fd is None:
            return
        try:
            if _names_our_file(self._fd, self.path):
                self.path.unlink(missing_ok=True)  # while still locked: see the module docstring
        except OSError:
            pass  # a file we cannot remove is harmless: the next holder takes it over
        finally:
            os.close(self._fd)  # drops the OS lock
            self._fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(path: str | os.PathLike, wait: bool = False, on_wait: Callable[[dict], None] | None = None) -> Lock:
    """Take the lock at `path`, creating the file, and write this process's name into it.

    When another live process holds it: raise LockBusy naming that process, or with `wait` call
    `on_wait(holder)` once and block until it is released (Ctrl-C still interrupts). A lock file
    whose process has died is taken over. OSError when the file cannot be created.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_holder(fd)
                    if not wait:
                        raise LockBusy(path, holder) from None
                    if on_wait is not None:
                        on_wait(holder)
                        on_wait = None
                    fcntl.flock(fd, fcntl.LOCK_EX)
            if _names_our_file(fd, path):
                _write_holder(fd)
                return Lock(path, fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # released and removed while we waited: lock the file that is there now


def live_holder(path: str | os.PathLike) -> dict | None:
    """What the lock file at `path` says when a live process holds it, else None. Creates nothing.

    Takes a shared lock for an instant to find out, so it never blocks.
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    finally:
        os.close(fd)
    return None


def describe_holder(holder: dict) -> str:
    """'process 4242 on host gpu-1 since 2026-12-02T10:00:00 (debias fit --out runs/x)' from a lock file's text."""
    if not holder.get("pid"):
        return "another process (it has not written its name yet)"
    text = f"process {holder['pid']} on host {holder.get('host', '?')} since {holder.get('since', '?')}"
    command = holder.get("command")
    return text + (f" ({command})" if command else "")


def _names_our_file(fd: int, path: Path) -> bool:
    try:
        ours, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)


def _write_holder(fd: int) -> None:
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": _command(),
    }
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _command() -> str:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "-m", "-c"):
        program = "debias"
    text = " ".join([program, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."
