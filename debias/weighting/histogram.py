"""The paper's density estimate: per-dimension histograms of the latent means.

For latent dimension i, Q_i is the histogram of mu_i over the training samples (fraction of
samples per bin, bins of equal width between that dimension's min and max). Smoothed and
renormalized, Q^_i = (Q_i + alpha) / sum_bins(Q_i + alpha). A sample's per-dimension score is
s_i = -log Q^_i(mu_i); the dimensions are combined into one log-weight by

- product   (the paper):        sum_i s_i            -> W = prod_i 1 / Q^_i
- geometric (product ** 1/D):    mean_i s_i
- max       (the public lab):    max_i s_i            -> only the rarest dimension counts

alpha -> 0 makes W uniform over latent space; alpha -> inf makes it uniform over samples.
Everything is computed in log space (a product of 100 numbers below 1 underflows float32) and
in chunks of rows, so memory stays at O(chunk x D) on top of the latents themselves.
"""

from __future__ import annotations

import torch

COMBINATIONS = ("product", "geometric", "max")
DEFAULT_CHUNK_ROWS = 65536


def _bin_index(mu: torch.Tensor, low: torch.Tensor, width: torch.Tensor, bins: int) -> torch.Tensor:
    # Equal-width bins with the outer edges open, so the min and max fall in the first/last bin.
    idx = torch.floor((mu - low) / width).long()
    return idx.clamp_(0, bins - 1)


def histogram_counts(mu: torch.Tensor, bins: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-dimension bin counts [D, bins] and the bin geometry (low [D], width [D]) of latents [N, D]."""
    if mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"latents must be a non-empty [N, D] matrix, got shape {tuple(mu.shape)}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    low = mu.min(dim=0).values
    high = mu.max(dim=0).values
    # A constant dimension gets width 1 so every sample lands in bin 0 instead of dividing by 0.
    width = torch.where(high > low, (high - low) / bins, torch.ones_like(high))
    n_dims = mu.shape[1]
    offsets = torch.arange(n_dims, device=mu.device) * bins
    counts = torch.zeros(n_dims * bins, dtype=torch.float64, device=mu.device)
    for start in range(0, len(mu), chunk_rows):
        idx = _bin_index(mu[start : start + chunk_rows], low, width, bins) + offsets
        counts += torch.bincount(idx.flatten(), minlength=n_dims * bins).double()
    return counts.view(n_dims, bins), low, width


def histogram_log_weights(
    mu: torch.Tensor,
    bins: int = 10,
    alpha: float = 0.01,
    combine: str = "geometric",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Unnormalized log-weights [N] (float64) of latent means mu [N, D]; larger = rarer."""
    if combine not in COMBINATIONS:
        raise ValueError(f"combine must be one of {COMBINATIONS}, got {combine!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    counts, low, width = histogram_counts(mu, bins, chunk_rows)
    smoothed = counts / len(mu) + alpha
    # Per-dimension score of each bin, -log Q^_i(bin); empty bins (alpha = 0) get +inf but no
    # sample ever falls in an empty bin, so the scores looked up below stay finite.
    scores = -torch.log(smoothed / smoothed.sum(dim=1, keepdim=True))
    flat_scores = scores.flatten()
    offsets = torch.arange(mu.shape[1], device=mu.device) * bins
    out = torch.empty(len(mu), dtype=torch.float64, device=mu.device)
    for start in range(0, len(mu), chunk_rows):
        per_dim = flat_scores[_bin_index(mu[start : start + chunk_rows], low, width, bins) + offsets]
        if combine == "product":
            out[start : start + chunk_rows] = per_dim.sum(dim=1)
        elif combine == "geometric":
            out[start : start + chunk_rows] = per_dim.mean(dim=1)
        else:
            out[start : start + chunk_rows] = per_dim.max(dim=1).values
    return out
