"""Training weights when the training rows are spread over processes (DDP): the numbers one process would get.

Each process holds the latent means of its contiguous shard of the training rows (shards in rank
order make up the rows in order) and every row's label. `comm` carries the collectives; any object
with the methods of debias.distributed.DistContext used here will do:

    all_reduce(tensor, op)      in place, op "sum", "min" or "max"
    all_gather_rows(tensor)     every process's rows, stacked in rank order
    broadcast(tensor)           in place, rank 0's values

With one process these are identities and the result is `training_weights`'s.
"""

from __future__ import annotations

import math

import torch

from debias.weighting.compute import class_strata, scored_rows, training_weights, weights_from_scores
from debias.weighting.histogram import DEFAULT_CHUNK_ROWS, bin_latents, latent_range, score_bins
from debias.weighting.registry import get_strategy
from debias.weighting.settings import WeightingSettings, validate


def sharded_histogram_log_weights(
    local_mu: torch.Tensor,
    total_rows: int,
    comm,
    bins: int = 10,
    alpha: float = 0.01,
    combine: str = "geometric",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """`histogram_log_weights` of this process's rows local_mu [n, D] (n may be 0), where the
    histograms cover the rows of every process (`total_rows` in all); float64 [n].

    The range is reduced with min / max and the integer bin counts with a sum, so every process
    bins and scores exactly as one process holding all rows would: the same bits.
    """
    if local_mu.ndim != 2:
        raise ValueError(f"latents must be an [n, D] matrix, got shape {tuple(local_mu.shape)}")
    n_dims, device = local_mu.shape[1], local_mu.device
    if len(local_mu):
        low_x, high_x = latent_range(local_mu, chunk_rows)
        low_x, high_x = low_x.clone(), high_x.clone()
        local_bad = not bool(torch.isfinite(low_x).all() & torch.isfinite(high_x).all())
    else:  # the identities of min and max
        low_x = torch.full((n_dims,), math.inf, dtype=local_mu.dtype, device=device)
        high_x = torch.full((n_dims,), -math.inf, dtype=local_mu.dtype, device=device)
        local_bad = False
    # A NaN would not survive a min/max reduction reliably, so non-finite latents are agreed on first.
    bad = comm.all_reduce(torch.tensor([int(local_bad)], dtype=torch.int64, device=device), "max")
    if bool(bad.item()):
        raise ValueError("latents contain NaN or infinite values")
    comm.all_reduce(low_x, "min")
    comm.all_reduce(high_x, "max")
    if len(local_mu):
        binned = bin_latents(local_mu, bins, value_range=(low_x, high_x), total_rows=total_rows, chunk_rows=chunk_rows)
        counts = binned.counts()
    else:
        binned, counts = None, torch.zeros(n_dims, bins, dtype=torch.int64, device=device)
    comm.all_reduce(counts, "sum")
    if binned is None:
        return torch.empty(0, dtype=torch.float64, device=device)
    return score_bins(binned, counts, alpha, combine, chunk_rows)


def histogram_shard_log_weights(
    local_latents: torch.Tensor, total_rows: int, comm, settings: WeightingSettings
) -> torch.Tensor:
    """The `histogram` strategy's log-weights of this process's scored rows (its `sharded` entry)."""
    return sharded_histogram_log_weights(
        local_latents, total_rows, comm, bins=settings.bins, alpha=settings.alpha, combine=settings.combine
    )


def sharded_training_weights(
    local_latents: torch.Tensor,
    labels,
    rows: slice,
    settings: WeightingSettings,
    vae_on_all: bool,
    comm,
    early_probs=None,
    groups=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`training_weights` over all rows, from this process's latents local_latents [n, k] of rows `rows`.

    labels: every row's label [N]; early_probs: every row's P(label = 1) from the early classifier
    (the errors strategies), or None; groups: every row's group name (the group strategies), or None. Returns weights [N] and scores [N], the same on every process,
    and the gathered latents [N, k] when the strategy needed them (else None: a strategy with a
    `sharded` entry, the histograms, moves counts, not latents).
    """
    validate(settings)
    device = local_latents.device
    labels = torch.as_tensor(labels).reshape(-1).to(device)
    strategy = get_strategy(settings.strategy)
    if strategy.sharded is not None:
        scored = scored_rows(labels, vae_on_all or strategy.scores_every_row)
        local_score = torch.full((len(local_latents),), float("nan"), dtype=torch.float64, device=device)
        total = int(scored.sum())
        if total:
            mine = scored[rows]
            local_score[mine] = strategy.sharded_log_weights(local_latents[mine], total, comm, settings)
        score = comm.all_gather_rows(local_score)
        weights = weights_from_scores(score, scored, settings.cap, class_strata(labels, settings))
        latents = None
    else:
        # The other strategies fit scikit-learn models (PCA, mixtures, k-NN, logistic probes) to the
        # whole latent matrix, which does not split into sums over shards: every process gathers
        # all latents and computes the same weights (on every process, so that an error stops
        # them all instead of leaving the others waiting).
        latents = comm.all_gather_rows(local_latents)
        weights, score = training_weights(latents, labels, settings, vae_on_all, early_probs, groups)
    # Identical inputs give identical weights on identical machines; rank 0's copy makes them
    # identical on machines whose floating-point libraries round differently too, so every process
    # draws the same sample from them.
    comm.broadcast(weights)
    comm.broadcast(score)
    return weights, score, latents


__all__ = ["histogram_shard_log_weights", "sharded_histogram_log_weights", "sharded_training_weights"]
