"""Weighting strategies: from latent means (and an early classifier's errors) to resampling weights.

Pure tensor functions behind one registry (`STRATEGIES`, name -> `Strategy`). A strategy maps the
`WeightingInputs` of the rows it scores to unnormalized log-weights; `compute_weights` (and its
histogram-era wrapper `training_weights`) decides which rows are scored, normalizes to mean 1,
applies the cap, and `weight_summary` reports how skewed the result is (ESS, max/min ratio).

    histogram      the paper's per-dimension histograms of the latent means (debias.weighting.histogram)
    joint          per-class joint density of the latent means on a few principal directions (.joint)
    errors         Just Train Twice: upweight what an early-stopped uniform classifier gets wrong (.errors)
    errors+joint   errors times the joint density (.combined)
    errors+latent  errors smoothed along the latent directions that predict them (.combined)
    uniform        every weight 1: the baseline a measured choice (`debias fit --weighting auto`) can fall back to
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from debias.weighting.combined import errors_joint_log_weights, errors_latent_log_weights
from debias.weighting.errors import classifier_errors, jtt_log_weights
from debias.weighting.histogram import COMBINATIONS, histogram_log_weights
from debias.weighting.joint import joint_log_weights
from debias.weighting.stats import cap_weights, effective_sample_size, max_min_ratio, normalize_log_weights, weight_summary

JOINT_METHODS = ("gmm", "knn")
# `--weighting auto` is resolved by `debias fit` (debias.selection), never by a strategy.
AUTO = "auto"


@dataclass(frozen=True)
class WeightingSettings:
    """How weights are computed; each strategy reads the fields it needs.

    Histogram defaults were chosen by measurement on synthfaces (BENCHMARKS.md, "Choosing the
    default combination"): at 100 latent dimensions the product puts all the weight on a few
    samples of one subgroup (ESS ~0), the geometric mean barely moves the weights (rare subgroups
    at 1.05-1.2x), and the max gives each of the three rare subgroups about 2x at an ESS near 0.3.

    errors_upweight  JTT's lambda: an error of the early classifier weighs this much more than a
                     correct sample (before normalization). 20 sits in the middle of the values
                     JTT tuned over ({5, 20, 50, 100}); with 5% errors it gives the errors half the
                     sampling mass, what balancing a 5% group against the rest would.
    errors_epoch     the uniform baseline's epoch whose training-split predictions are the errors.
                     1: JTT's early stopping keeps the errors of the shortcut, before the network
                     memorizes the rare samples (after which it gets them all right). A fit takes
                     the first epoch from this one on whose classifier errs less than always
                     predicting the majority class (debias.weighting.errors.early_error_rates).
    joint_method     "gmm" (Gaussian mixture) or "knn" (k-nearest-neighbour density).
    joint_dims       principal directions of the standardized latent means the density lives on.
    joint_components mixture components per class (fewer for small classes).
    knn_k            neighbours of the k-NN density.
    joint_alpha      smoothing of the joint density, relative to the class's median density (see
                     debias.weighting.joint): bounds a weight near 1/joint_alpha times a typical one.
    """

    strategy: str = "histogram"
    bins: int = 10
    alpha: float = 0.001
    combine: str = "max"
    cap: float | None = None
    errors_upweight: float = 20.0
    errors_epoch: int = 1
    joint_method: str = "gmm"
    joint_dims: int = 4
    joint_components: int = 8
    knn_k: int = 20
    joint_alpha: float = 0.1

    def to_dict(self) -> dict:
        """Plain dict for config.json."""
        return asdict(self)


@dataclass(frozen=True)
class WeightingInputs:
    """What a strategy may look at, for the rows it scores (frozen; tensors on one device).

    latents   latent means [N, k] of the DB-VAE
    labels    class labels [N] (0/1) of the training split
    errors    bool [N]: the early-stopped uniform classifier got the row wrong (None if not trained)
    losses    float [N]: that classifier's cross-entropy on the row (None if not trained)
    """

    latents: torch.Tensor
    labels: torch.Tensor
    errors: torch.Tensor | None = None
    losses: torch.Tensor | None = None

    @classmethod
    def from_early_probs(cls, latents: torch.Tensor, labels: torch.Tensor, early_probs=None) -> WeightingInputs:
        """Inputs with errors and losses from the early classifier's P(label = 1) per row (or None)."""
        labels = torch.as_tensor(labels).reshape(-1).to(latents.device)
        if early_probs is None:
            return cls(latents, labels)
        p = torch.as_tensor(early_probs, dtype=torch.float64).reshape(-1).to(latents.device)
        if len(p) != len(labels):
            raise ValueError(f"early_probs has {len(p)} rows but there are {len(labels)} labels")
        y = labels.to(torch.float64)
        errors = classifier_errors(p, labels)
        eps = 1e-12
        losses = -(y * torch.log(p.clamp_min(eps)) + (1 - y) * torch.log((1 - p).clamp_min(eps)))
        return cls(latents, labels, errors, losses)

    def rows(self, mask: torch.Tensor) -> WeightingInputs:
        """The same inputs restricted to the rows where `mask` is True."""
        pick = lambda t: None if t is None else t[mask]  # noqa: E731
        return WeightingInputs(self.latents[mask], self.labels[mask], pick(self.errors), pick(self.losses))


@dataclass(frozen=True)
class Strategy:
    """A named weighting strategy: inputs of the scored rows -> unnormalized log-weights [rows]."""

    name: str
    log_weights: Callable[[WeightingInputs, WeightingSettings], torch.Tensor]
    needs_errors: bool
    description: str

    def __call__(self, inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
        if self.needs_errors and inputs.errors is None:
            raise ValueError(
                f"weighting strategy {self.name!r} needs the early classifier's errors on the training split (WeightingInputs.errors)"
            )
        return self.log_weights(inputs, settings)


# name -> Strategy, in the order `--weighting auto` tries them
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, needs_errors: bool, description: str):
    """Decorator: make `log_weights(inputs, settings)` available as `--weighting name`."""

    def wrap(func):
        STRATEGIES[name] = Strategy(name, func, needs_errors, description)
        return func

    return wrap


def _joint_options(settings: WeightingSettings) -> dict:
    return dict(dims=settings.joint_dims, method=settings.joint_method, components=settings.joint_components,
                knn_k=settings.knn_k, alpha=settings.joint_alpha)


@register_strategy("histogram", False, "the paper's per-dimension histograms of the latent means")
def _histogram(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return histogram_log_weights(inputs.latents, bins=settings.bins, alpha=settings.alpha, combine=settings.combine)


@register_strategy("joint", False, "per-class joint density of the latent means on their top principal directions")
def _joint(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return joint_log_weights(inputs.latents, inputs.labels, **_joint_options(settings))


@register_strategy("errors", True, "Just Train Twice: upweight the early uniform classifier's training errors")
def _errors(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return jtt_log_weights(inputs.errors, settings.errors_upweight)


@register_strategy("errors+joint", True, "errors times the per-class joint latent density")
def _errors_joint(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return errors_joint_log_weights(inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight, **_joint_options(settings))


@register_strategy("errors+latent", True, "errors smoothed along the latent directions that predict them")
def _errors_latent(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return errors_latent_log_weights(inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight)


@register_strategy("uniform", False, "every weight 1 (no reweighting)")
def _uniform(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return torch.zeros(len(inputs.labels), dtype=torch.float64, device=inputs.latents.device)


def needs_errors(strategy: str) -> bool:
    """Whether `strategy` reads the early classifier's errors (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].needs_errors


def validate(settings: WeightingSettings, allow_auto: bool = False) -> None:
    """Raise ValueError naming the first setting that is out of range.

    `allow_auto`: accept strategy "auto" (a fit's settings, resolved by measurement before use).
    """
    if settings.strategy not in STRATEGIES and not (allow_auto and settings.strategy == AUTO):
        choices = sorted(STRATEGIES) + ([AUTO] if allow_auto else [])
        raise ValueError(f"unknown weighting strategy {settings.strategy!r}; choose one of {', '.join(choices)}")
    if settings.bins < 2:
        raise ValueError(f"bins must be >= 2, got {settings.bins}")
    if settings.alpha < 0:
        raise ValueError(f"alpha must be >= 0 (0 is the paper's uniform-over-latent-space limit), got {settings.alpha}")
    if settings.combine not in COMBINATIONS:
        raise ValueError(f"combine must be one of {COMBINATIONS}, got {settings.combine!r}")
    if settings.cap is not None and settings.cap < 1:
        raise ValueError(f"cap must be >= 1 (a multiple of the mean weight), got {settings.cap}")
    if not settings.errors_upweight >= 1:
        raise ValueError(f"errors_upweight must be >= 1 (1 = no upweighting), got {settings.errors_upweight}")
    if isinstance(settings.errors_epoch, bool) or not isinstance(settings.errors_epoch, int) or settings.errors_epoch < 1:
        raise ValueError(f"errors_epoch must be an integer >= 1, got {settings.errors_epoch}")
    if settings.joint_method not in JOINT_METHODS:
        raise ValueError(f"joint_method must be one of {JOINT_METHODS}, got {settings.joint_method!r}")
    for name in ("joint_dims", "joint_components", "knn_k"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}")
    if not settings.joint_alpha >= 0:
        raise ValueError(f"joint_alpha must be >= 0, got {settings.joint_alpha}")


def compute_weights(inputs: WeightingInputs, settings: WeightingSettings, vae_on_all: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling weights [N] with mean 1, and the log-weight score [N] (NaN for unscored rows).

    With `vae_on_all` every row is scored together. Otherwise (face detection) only positives
    are scored, since the VAE never learned to model negatives; negatives keep weight 1 and the
    positives' weights have mean 1, so the class balance of the data is unchanged. The cap
    applies to every strategy.
    """
    validate(settings)
    latents = inputs.latents
    labels = inputs.labels.reshape(-1).to(latents.device)
    scored = scored_rows(labels, vae_on_all)
    score = torch.full((len(labels),), float("nan"), dtype=torch.float64, device=latents.device)
    if scored.any():
        score[scored] = STRATEGIES[settings.strategy](replace(inputs, labels=labels).rows(scored), settings).to(latents.device)
    return weights_from_scores(score, scored, settings.cap), score


def scored_rows(labels: torch.Tensor, vae_on_all: bool) -> torch.Tensor:
    """bool [N]: the rows a strategy scores, every row with `vae_on_all`, else the positives."""
    return torch.ones_like(labels, dtype=torch.bool) if vae_on_all else labels == 1


def weights_from_scores(score: torch.Tensor, scored: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Weights [N] (float64) from log-weight scores [N]: mean 1 over the scored rows, then capped; 1 elsewhere."""
    weights = torch.ones(len(score), dtype=torch.float64, device=score.device)
    if scored.any():
        # normalize_log_weights works in float64, so scores stored as float64 lose nothing.
        weights[scored] = cap_weights(normalize_log_weights(score[scored]), cap)
    return weights


def training_weights(
    latents: torch.Tensor,
    labels: torch.Tensor,
    settings: WeightingSettings,
    vae_on_all: bool,
    early_probs=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`compute_weights` from latents, labels and (for the errors strategies) the early classifier's
    P(label = 1) on every training row."""
    return compute_weights(WeightingInputs.from_early_probs(latents, labels, early_probs), settings, vae_on_all)


__all__ = [
    "AUTO", "COMBINATIONS", "JOINT_METHODS", "STRATEGIES", "Strategy", "WeightingInputs", "WeightingSettings",
    "cap_weights", "compute_weights", "effective_sample_size", "histogram_log_weights", "max_min_ratio",
    "needs_errors", "normalize_log_weights", "register_strategy", "scored_rows", "training_weights", "validate",
    "weight_summary", "weights_from_scores",
]
