"""One fit as several processes (torchrun): the process group, which rank does what, and the collectives.

`torchrun --nproc_per_node N -m debias fit ...` starts N copies of `debias fit`; each finds its place
in the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without
torchrun, or with WORLD_SIZE=1, nothing here does anything: `SINGLE` is rank 0 of 1, its
collectives hand back their input and `session()` starts no process group, so a single-process
fit runs the code it always ran.

Backends: gloo carries CPU tensors, nccl CUDA tensors. Where CUDA is available the group is
"cpu:gloo,cuda:nccl", so it can be set up before the fit's device is known and `--device cpu`
still works on a GPU machine; each rank's default device is then cuda:LOCAL_RANK.

Errors. The steps every rank must agree on (checking the settings, preparing the run folder,
loading the data) run under `DistContext.check`, `on_main` or `local_main_first`: after the step
the ranks exchange whether it failed, and if it failed anywhere every rank raises: rank 0 the
error (or, when another rank failed, a PeerError with that rank's message), the other ranks a
PeerError, which the command line does not print again, so the message appears once. A failure
that only one rank meets outside those steps (rank 0 finding the disk full while writing) ends
that rank; torchrun then stops the others.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist

from debias.errors import PeerError, UserError

T = TypeVar("T")

_REDUCE_OPS = {"sum": "SUM", "min": "MIN", "max": "MAX"}


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a launch: its global rank, the number of processes, its rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise UserError(
                f"WORLD_SIZE is set but {name} is not; start several processes with torchrun, which sets both"
            )
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(
            f"environment variable {name}={value!r} is not an integer; start several processes with torchrun"
        ) from None


def launch_info() -> Launch:
    """This process's place: from an already initialized process group, else torchrun's variables, else rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return Launch(rank, dist.get_world_size(), _env_int("LOCAL_RANK", rank))
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Launch()
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK", rank)
    if not 0 <= rank < world_size:
        raise UserError(f"RANK={rank} is outside WORLD_SIZE={world_size}; start several processes with torchrun")
    return Launch(rank, world_size, local_rank)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one): the one that writes files and prints."""
    return launch_info().rank == 0


def shard(n: int, rank: int, world_size: int, align: int = 1) -> slice:
    """Rank `rank`'s contiguous share of range(n), in blocks of `align` rows.

    Shares follow each other in rank order, so concatenating them in that order restores range(n);
    they differ by at most one block. `align` = the batch size of a loop over the rows makes every
    batch a rank runs one of the batches a single process would run over range(n).
    """
    if world_size < 1 or not 0 <= rank < world_size or align < 1 or n < 0:
        raise ValueError(f"bad shard request: n={n}, rank={rank}, world_size={world_size}, align={align}")
    blocks = -(-n // align)
    base, extra = divmod(blocks, world_size)
    first = rank * base + min(rank, extra)
    count = base + (1 if rank < extra else 0)
    return slice(min(first * align, n), min((first + count) * align, n))


def _default_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@dataclass(frozen=True)
class DistContext:
    """This process's rank in the fit and the collectives the fit uses; `SINGLE` (world_size 1) makes them no-ops.

    `device` is the rank's default device: cuda:LOCAL_RANK where CUDA is available, else the CPU.
    Every collective must be called by every rank, in the same order.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: writes the run folder, shows progress bars, prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    def shard(self, n: int, align: int = 1) -> slice:
        """This rank's contiguous share of range(n) (see `shard`)."""
        return shard(n, self.rank, self.world_size, align)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            dist.barrier()

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce `tensor` in place over the ranks with "sum", "min" or "max"; returns it."""
        if self.distributed:
            dist.all_reduce(tensor, op=getattr(dist.ReduceOp, _REDUCE_OPS[op]))
        return tensor

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Overwrite `tensor` in place with rank `src`'s; returns it."""
        if self.distributed:
            dist.broadcast(tensor, src=src)
        return tensor

    def all_gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's `tensor` ([n_rank, ...], n_rank may differ) stacked along rows in rank order.

        The tensors travel padded to the longest one and are trimmed afterwards: all_gather needs
        equal shapes. Every rank gets the same result, bit for bit.
        """
        if not self.distributed:
            return tensor
        tensor = tensor.contiguous()
        length = torch.tensor([len(tensor)], dtype=torch.int64, device=tensor.device)
        lengths = [torch.zeros_like(length) for _ in range(self.world_size)]
        dist.all_gather(lengths, length)
        sizes = [int(n) for n in lengths]
        longest = max(sizes)
        if longest == 0:
            return tensor
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's `obj` (picklable) on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics).

        DDP keeps parameters equal on every rank, but each rank's last training step updates its
        batch-norm statistics from its own rows; afterwards every rank holds rank 0's model, the one
        the checkpoint saves, and sharded evaluation sees one model.
        """
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on some rank (the same answer on every rank)."""
        if not self.distributed:
            return bool(flag)
        value = torch.tensor([1 if flag else 0], dtype=torch.int64)
        return bool(self.all_reduce(value, "max").item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (keys must be the same on every rank)."""
        if not self.distributed:
            return values
        keys = sorted(values)  # the same order on every rank, whatever order the dict was built in
        total = self.all_reduce(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64), "sum")
        means = {k: float(v) / self.world_size for k, v in zip(keys, total.tolist())}
        return {k: means[k] for k in values}

    def check(self, fn: Callable[[], T], run: bool = True) -> T | None:
        """`fn()` on this rank (skipped when not `run`); if it raised on any rank, every rank raises.

        Rank 0 raises its own exception, or a PeerError naming the first rank that failed and its
        message; a rank that failed with anything but a UserError raises its own exception (its
        traceback is the useful part); the other ranks raise a PeerError.
        """
        if not self.distributed:
            return fn() if run else None
        result, error, message = None, None, None
        if run:
            try:
                result = fn()
            except Exception as exc:  # every kind: a rank that failed must still tell the others
                error = exc
                message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        messages: list[str | None] = [None] * self.world_size
        dist.all_gather_object(messages, message)
        failed = [(rank, text) for rank, text in enumerate(messages) if text is not None]
        if not failed:
            return result
        if error is not None and (self.is_main or not isinstance(error, UserError)):
            raise error
        rank, text = failed[0]
        peer = PeerError(f"rank {rank} of {self.world_size}: {text}")
        if error is not None:
            raise peer from error
        raise peer

    def on_main(self, fn: Callable[[], T]) -> T:
        """`fn()` on rank 0 only, its result (picklable) on every rank; a failure raises everywhere (see `check`)."""
        if not self.distributed:
            return fn()
        result = self.check(fn, run=self.is_main)
        return self.broadcast_object(result)

    def local_main_first(self, fn: Callable[[], T]) -> T:
        """`fn()` on every rank, first on each machine's local rank 0, then on the others.

        For steps that fill a cache on the machine (decoding a dataset once): the first rank per
        machine builds it, the others then read it. A failure raises everywhere (see `check`).
        """
        if not self.distributed:
            return fn()
        first = self.local_rank == 0
        result = self.check(fn, run=first)
        later = self.check(fn, run=not first)
        return result if first else later

    def shared_error(self, error: UserError) -> UserError:
        """An error every rank meets at the same point (NaN loss after the gradients' all-reduce):
        itself on rank 0, a PeerError with the same message elsewhere, so it is printed once."""
        if self.is_main or isinstance(error, PeerError):
            return error
        return PeerError(str(error))


SINGLE = DistContext()


@contextlib.contextmanager
def session() -> Iterator[DistContext]:
    """The DistContext of this process, with the process group set up for the duration (and torn down after, also on errors).

        with session() as ctx:
            rows = ctx.shard(len(images))

    Without torchrun (or with WORLD_SIZE=1): SINGLE, and no process group. Inside a process group
    that someone else initialized (a test, a user's script): that group, left alone at the end.
    """
    if dist.is_available() and dist.is_initialized():
        launch = launch_info()
        yield DistContext(launch.rank, launch.world_size, launch.local_rank, _default_device(launch.local_rank))
        return
    launch = launch_info()
    if launch.world_size == 1:
        yield SINGLE
        return
    if not dist.is_available():
        raise UserError(
            "this torch build has no torch.distributed; run debias fit as a single process (without torchrun)"
        )
    cuda = torch.cuda.is_available()
    if cuda and launch.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(launch.local_rank)  # nccl's communicators and object collectives use the current device
    try:
        dist.init_process_group(
            "cpu:gloo,cuda:nccl" if cuda else "gloo",
            init_method="env://",
            rank=launch.rank,
            world_size=launch.world_size,
        )
    except ValueError as exc:  # a missing MASTER_ADDR or MASTER_PORT
        raise UserError(f"cannot set up the process group ({exc}); start several processes with torchrun") from None
    try:
        yield DistContext(launch.rank, launch.world_size, launch.local_rank, _default_device(launch.local_rank))
    finally:
        dist.destroy_process_group()


__all__ = ["SINGLE", "DistContext", "Launch", "PeerError", "is_main_process", "launch_info", "session", "shard"]
