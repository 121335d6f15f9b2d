"""Which training rows each epoch visits: uniformly, or drawn by weight; under DDP, which of them each rank takes."""

from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded by (seed, epoch, stream): draws are reproducible and independent per epoch."""
    g = torch.Generator()
    g.manual_seed(((seed * 1_000_003 + epoch) * 101 + stream) % (2**63))
    return g


def uniform_indices(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of range(n): every row once per epoch."""
    return torch.randperm(n, generator=generator)


def weighted_indices(weights: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """`num_samples` row indices drawn with replacement with probability proportional to `weights`."""
    w = weights.detach().double().cpu()
    if w.ndim != 1 or len(w) == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be a non-empty vector of finite non-negative numbers with a positive sum")
    if len(w) < 2**24:
        return torch.multinomial(w, num_samples, replacement=True, generator=generator)
    # torch.multinomial refuses more than 2**24 categories: invert the CDF instead.
    cdf = torch.cumsum(w, 0)
    u = torch.rand(num_samples, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, u).clamp_(max=len(w) - 1)


def rank_share(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s share of one epoch's `indices` under DDP: positions rank, rank + world_size, ...

    Every rank draws the same `indices` (same generator) and keeps its positions, so the shares are
    disjoint parts of one draw. The draw is first padded to a multiple of world_size by repeating its
    first rows (as torch's DistributedSampler does), so every rank takes the same number of steps,
    which DDP needs. With a per-rank batch of B / world_size, step t of every rank together covers
    positions [t*B, (t+1)*B) of the draw: the rows of a single process's step t.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    if world_size == 1:
        return indices
    padding = -len(indices) % world_size
    if padding:
        indices = torch.cat([indices, indices[:padding].repeat(-(-padding // max(len(indices), 1)))[:padding]])
    return indices[rank::world_size]
