"""Turning log-weights into sampling weights, and the numbers that say how skewed they are."""

from __future__ import annotations

import torch


def normalize_log_weights(log_weights: torch.Tensor) -> torch.Tensor:
    """Weights with mean 1 from unnormalized log-weights, computed stably in float64."""
    lw = log_weights.double()
    # Subtracting the max keeps exp() in range even for sums of 100 large per-dimension terms.
    w = torch.exp(lw - lw.max())
    return w * (len(w) / w.sum())


def cap_weights(weights: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Clip weights to at most `cap` times the mean while keeping mean 1.

    Clipping then renormalizing raises the uncapped weights, which may push some of them over the
    cap again, so this repeats until the largest weight is within the cap (a few rounds at most).
    """
    if cap is None:
        return weights
    if cap < 1:
        raise ValueError(f"cap must be >= 1 (a multiple of the mean weight), got {cap}")
    w = weights.double() * (len(weights) / weights.double().sum())
    for _ in range(100):
        if w.max() <= cap * (1 + 1e-9):
            break
        w = torch.clamp(w, max=cap)
        w = w * (len(w) / w.sum())
    return w.to(weights.dtype)


def effective_sample_size(weights: torch.Tensor) -> float:
    """ESS as a fraction of N: (sum w)^2 / (N * sum w^2); 1 for uniform, 1/N for one sample."""
    w = weights.double()
    return float(w.sum() ** 2 / (len(w) * (w**2).sum()))


def max_min_ratio(weights: torch.Tensor) -> float:
    """Largest weight divided by smallest (inf if some weight is zero)."""
    w = weights.double()
    low = float(w.min())
    return float("inf") if low == 0 else float(w.max()) / low


def weight_summary(weights: torch.Tensor) -> dict[str, float]:
    """ESS, max/min ratio and the extremes of a weight vector, for logs and config files."""
    return {
        "ess": effective_sample_size(weights),
        "max_min_ratio": max_min_ratio(weights),
        "max_weight": float(weights.max()),
        "min_weight": float(weights.min()),
    }
