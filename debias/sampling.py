"""Which training rows each epoch visits: uniformly, or drawn by weight."""

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
