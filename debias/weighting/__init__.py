"""Weighting strategies: from latent means (and labels) to per-sample resampling weights.

Pure tensor functions behind one registry. A strategy maps the latents of the rows it scores to
unnormalized log-weights; `training_weights` decides which rows are scored, normalizes to mean 1,
applies the cap and reports how skewed the result is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from debias.weighting.histogram import COMBINATIONS, histogram_log_weights
from debias.weighting.stats import cap_weights, effective_sample_size, max_min_ratio, normalize_log_weights, weight_summary


@dataclass(frozen=True)
class WeightingSettings:
    """How weights are computed.

    Defaults were chosen by measurement on synthfaces (BENCHMARKS.md, "Choosing the default
    combination"): at 100 latent dimensions the product puts all the weight on a few samples of
    one subgroup (ESS ~0), the geometric mean barely moves the weights (rare subgroups at
    1.05-1.2x), and the max gives each of the three rare subgroups about 2x at an ESS near 0.3.
    """

    strategy: str = "histogram"
    bins: int = 10
    alpha: float = 0.001
    combine: str = "max"
    cap: float | None = None

    def to_dict(self) -> dict:
        """Plain dict for config.json."""
        return asdict(self)


def _histogram(mu: torch.Tensor, settings: WeightingSettings) -> torch.Tensor:
    return histogram_log_weights(mu, bins=settings.bins, alpha=settings.alpha, combine=settings.combine)


# name -> function(latents of the scored rows, settings) -> log-weights [rows]
STRATEGIES: dict[str, Callable[[torch.Tensor, WeightingSettings], torch.Tensor]] = {"histogram": _histogram}


def validate(settings: WeightingSettings) -> None:
    """Raise ValueError naming the first setting that is out of range."""
    if settings.strategy not in STRATEGIES:
        raise ValueError(f"unknown weighting strategy {settings.strategy!r}; choose one of {sorted(STRATEGIES)}")
    if settings.bins < 2:
        raise ValueError(f"bins must be >= 2, got {settings.bins}")
    if settings.alpha < 0:
        raise ValueError(f"alpha must be >= 0 (0 is the paper's uniform-over-latent-space limit), got {settings.alpha}")
    if settings.combine not in COMBINATIONS:
        raise ValueError(f"combine must be one of {COMBINATIONS}, got {settings.combine!r}")
    if settings.cap is not None and settings.cap < 1:
        raise ValueError(f"cap must be >= 1 (a multiple of the mean weight), got {settings.cap}")


def training_weights(
    latents: torch.Tensor, labels: torch.Tensor, settings: WeightingSettings, vae_on_all: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling weights [N] with mean 1, and the log-weight score [N] (NaN for unscored rows).

    With `vae_on_all` every row is scored together. Otherwise (face detection) only positives
    are scored, since the VAE never learned to model negatives; negatives keep weight 1 and the
    positives' weights have mean 1, so the class balance of the data is unchanged.
    """
    validate(settings)
    labels = labels.reshape(-1).to(latents.device)
    scored = torch.ones_like(labels, dtype=torch.bool) if vae_on_all else labels == 1
    weights = torch.ones(len(labels), dtype=torch.float64, device=latents.device)
    score = torch.full((len(labels),), float("nan"), dtype=torch.float64, device=latents.device)
    if scored.any():
        log_w = STRATEGIES[settings.strategy](latents[scored], settings)
        score[scored] = log_w
        weights[scored] = cap_weights(normalize_log_weights(log_w), settings.cap)
    return weights, score


__all__ = [
    "COMBINATIONS", "STRATEGIES", "WeightingSettings", "cap_weights", "effective_sample_size",
    "histogram_log_weights", "max_min_ratio", "normalize_log_weights", "training_weights", "validate",
    "weight_summary",
]
