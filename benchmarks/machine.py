"""What every benchmark prints about the machine it ran on, and a timer (shared by the scripts here)."""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    """Total memory in GiB from /proc/meminfo (NaN where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def timed(fn) -> tuple[float, object]:
    """(seconds, result) of one call of fn."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def machine_line(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> str:
    """One line naming the machine, the library versions, torch's threads and the load around the run.

    The load averages (os.getloadavg() before and after the timed part) say how much the shared
    machine's other jobs may have moved the figures.
    """
    return (
        f"machine: {os.cpu_count()} cpus, {cpu_model()}, {memory_gib():.0f} GiB, torch {torch.__version__}, "
        f"numpy {np.__version__}, torch threads {torch.get_num_threads()}, load average "
        f"{load_before[0]:.1f} -> {load_after[0]:.1f} (1-min; 5-min {load_after[1]:.1f})"
    )
