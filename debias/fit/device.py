"""Which torch device a fit runs on: --device auto, cpu, cuda or cuda:N, and one GPU per torchrun process."""

from __future__ import annotations

import re

import torch

from debias.distributed import SINGLE, DistContext
from debias.errors import UserError


def resolve_device(name: str, ctx: DistContext = SINGLE) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' or 'cuda:N' without that GPU is a user error.

    Under torchrun every rank takes its own GPU, cuda:LOCAL_RANK, for 'auto' and 'cuda'.
    """
    if ctx.distributed:
        return _rank_device(name, ctx)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was requested but no CUDA GPU is available; use --device cpu or auto")
        index = int(match.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
        return torch.device(name)
    raise UserError(f"unknown device {name!r}; use --device auto, cpu, cuda or cuda:N")


def _rank_device(name: str, ctx: DistContext) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        if re.fullmatch(r"cuda:\d+", name):
            raise UserError(
                f"--device {name} cannot be used under torchrun, where each process takes the GPU of its "
                "LOCAL_RANK; use --device cuda (or auto)"
            )
        raise UserError(f"unknown device {name!r}; use --device auto, cpu or cuda")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name} was requested but no CUDA GPU is available; use --device cpu or auto")
    count = torch.cuda.device_count()
    if ctx.local_rank >= count:
        raise UserError(
            f"torchrun started more processes on this machine than it has GPUs ({count}): process "
            f"{ctx.local_rank} has none. Pass --nproc_per_node {count} or less"
        )
    return torch.device("cuda", ctx.local_rank)
