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
    classes        class balancing: every class the same total weight (.labels; the target labels only)
    groups         AIF360's reweighing, P(g) P(y) / P(g, y) over the true groups (.labels; uses group labels)
    balanced-groups  every (group, label) cell the same total weight, as the oracle draws (.labels; uses group labels)
    uniform        every weight 1: the baseline a measured choice (`debias fit --weighting auto`) can fall back to

The last four never look at the latents: they are the baselines users compare the label-free
strategies against, exported as weights like every other. Label-based strategies score every row,
also in face detection, since balancing classes is their point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch

from debias.settings import declared, problems
from debias.weighting.combined import errors_joint_log_weights, errors_latent_log_weights
from debias.weighting.errors import classifier_errors, jtt_log_weights
from debias.weighting.histogram import COMBINATIONS, histogram_log_weights
from debias.weighting.joint import JOINT_METHODS, joint_log_weights
from debias.weighting.labels import balanced_group_log_weights, class_balanced_log_weights, reweighing_log_weights
from debias.weighting.settings import AUTO, WeightingSettings
from debias.weighting.stats import (
    cap_weights,
    effective_sample_size,
    max_min_ratio,
    normalize_log_weights,
    weight_summary,
)


@dataclass(frozen=True)
class WeightingInputs:
    """What a strategy may look at, for the rows it scores (frozen; tensors on one device).

    latents   latent means [N, k] of the DB-VAE
    labels    class labels [N] (0/1) of the training split
    errors    bool [N]: the early-stopped uniform classifier got the row wrong (None if not trained)
    losses    float [N]: that classifier's cross-entropy on the row (None if not trained)
    groups    str array [N]: each row's true group, its group attributes without the label (e.g.
              'Male=1'; debias.groups.column_groups); None when the data has none. Only the
              strategies that say they use group labels (`needs_groups`) read it.
    """

    latents: torch.Tensor
    labels: torch.Tensor
    errors: torch.Tensor | None = None
    losses: torch.Tensor | None = None
    groups: np.ndarray | None = None

    @classmethod
    def from_early_probs(
        cls, latents: torch.Tensor, labels: torch.Tensor, early_probs=None, groups=None
    ) -> WeightingInputs:
        """Inputs with errors and losses from the early classifier's P(label = 1) per row (or None), and the groups."""
        labels = torch.as_tensor(labels).reshape(-1).to(latents.device)
        if groups is not None:
            groups = np.asarray(groups).reshape(-1).astype(str)
            if len(groups) != len(labels):
                raise ValueError(f"groups has {len(groups)} rows but there are {len(labels)} labels")
        if early_probs is None:
            return cls(latents, labels, groups=groups)
        p = torch.as_tensor(early_probs, dtype=torch.float64).reshape(-1).to(latents.device)
        if len(p) != len(labels):
            raise ValueError(f"early_probs has {len(p)} rows but there are {len(labels)} labels")
        y = labels.to(torch.float64)
        errors = classifier_errors(p, labels)
        eps = 1e-12
        losses = -(y * torch.log(p.clamp_min(eps)) + (1 - y) * torch.log((1 - p).clamp_min(eps)))
        return cls(latents, labels, errors, losses, groups)

    def rows(self, mask: torch.Tensor) -> WeightingInputs:
        """The same inputs restricted to the rows where `mask` is True."""
        pick = lambda t: None if t is None else t[mask]  # noqa: E731
        groups = None if self.groups is None else self.groups[mask.cpu().numpy()]
        return WeightingInputs(self.latents[mask], self.labels[mask], pick(self.errors), pick(self.losses), groups)


@dataclass(frozen=True)
class Strategy:
    """A named weighting strategy: inputs of the scored rows -> unnormalized log-weights [rows].

    needs_errors     it reads the early classifier's errors (WeightingInputs.errors)
    needs_groups     it reads the true group of every row (WeightingInputs.groups): not label-free
    scores_every_row it balances labels, so it scores negatives too in face detection
    reads            the WeightingSettings fields it reads, besides `strategy` and `cap` (every one's)
    """

    name: str
    log_weights: Callable[[WeightingInputs, WeightingSettings], torch.Tensor]
    needs_errors: bool
    description: str
    needs_groups: bool = False
    scores_every_row: bool = False
    reads: tuple[str, ...] = ()

    def __call__(self, inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
        """Unnormalized log-weights of the rows in `inputs`; ValueError when an input it needs is missing."""
        if self.needs_errors and inputs.errors is None:
            raise ValueError(
                f"weighting strategy {self.name!r} needs the early classifier's errors on the training split (WeightingInputs.errors)"
            )
        if self.needs_groups and inputs.groups is None:
            raise ValueError(
                f"weighting strategy {self.name!r} needs the true group of every training row (WeightingInputs.groups)"
            )
        return self.log_weights(inputs, settings)


# name -> Strategy, in the order `--weighting` lists them
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str,
    needs_errors: bool,
    description: str,
    needs_groups: bool = False,
    scores_every_row: bool = False,
    reads: tuple[str, ...] = (),
):
    """Decorator: make `log_weights(inputs, settings)` available as `--weighting name`."""

    def wrap(func):
        STRATEGIES[name] = Strategy(name, func, needs_errors, description, needs_groups, scores_every_row, reads)
        return func

    return wrap


HISTOGRAM_SETTINGS = ("bins", "alpha", "combine", "keep_class_shares")
JOINT_SETTINGS = ("joint_method", "joint_dims", "joint_components", "knn_k", "joint_alpha", "keep_class_shares")
ERRORS_SETTINGS = ("errors_upweight", "errors_epoch", "keep_class_shares")


def unread_settings(strategies: Iterable[str], names: Iterable[str]) -> list[str]:
    """The WeightingSettings fields among `names` that none of `strategies` reads (unknown strategies read none)."""
    read = {"strategy", "cap"}.union(*(STRATEGIES[s].reads for s in strategies if s in STRATEGIES))
    return [name for name in names if name not in read]


def _given_flag(item) -> str:
    """The option a user gives to change this setting: for an on/off pair, the side away from the default."""
    flag = item.setting.flag
    if "/" not in flag:
        return flag
    on, off = flag.split("/")
    return off if item.field.default else on


def unread_settings_problem(strategies: Iterable[str], names: Iterable[str]) -> str | None:
    """One sentence refusing the settings among `names` that none of `strategies` reads (None when all are read)."""
    strategies = list(strategies)
    unread = unread_settings(strategies, names)
    if not unread:
        return None
    flags = {item.name: _given_flag(item) for item in declared(WeightingSettings)}
    parts = []
    for name in unread:
        readers = [s.name for s in STRATEGIES.values() if name in s.reads]
        parts.append(f"{flags[name]} (read by {', '.join(readers)})")
    given = " and ".join(strategies) if len(strategies) < 3 else ", ".join(strategies)
    return (
        f"the weighting here is {given}, which does not read {', '.join(parts)}: "
        f"pick a strategy that reads it with --weighting, or drop {' '.join(flags[n] for n in unread)}"
    )


def _joint_options(settings: WeightingSettings) -> dict:
    return dict(
        dims=settings.joint_dims,
        method=settings.joint_method,
        components=settings.joint_components,
        knn_k=settings.knn_k,
        alpha=settings.joint_alpha,
    )


@register_strategy(
    "histogram", False, "the paper's per-dimension histograms of the latent means", reads=HISTOGRAM_SETTINGS
)
def _histogram(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return histogram_log_weights(inputs.latents, bins=settings.bins, alpha=settings.alpha, combine=settings.combine)


@register_strategy(
    "joint",
    False,
    "per-class joint density of the latent means on their top principal directions",
    reads=JOINT_SETTINGS,
)
def _joint(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return joint_log_weights(inputs.latents, inputs.labels, **_joint_options(settings))


@register_strategy(
    "errors", True, "Just Train Twice: upweight the early uniform classifier's training errors", reads=ERRORS_SETTINGS
)
def _errors(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return jtt_log_weights(inputs.errors, settings.errors_upweight)


@register_strategy(
    "errors+joint",
    True,
    "errors times the per-class joint latent density",
    reads=ERRORS_SETTINGS + JOINT_SETTINGS,
)
def _errors_joint(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return errors_joint_log_weights(
        inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight, **_joint_options(settings)
    )


@register_strategy(
    "errors+latent",
    True,
    "errors smoothed along the latent directions that predict them",
    reads=ERRORS_SETTINGS,
)
def _errors_latent(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return errors_latent_log_weights(inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight)


@register_strategy("classes", False, "class balancing: every class the same total weight", scores_every_row=True)
def _classes(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return class_balanced_log_weights(inputs.labels).to(inputs.latents.device)


@register_strategy(
    "groups",
    False,
    "AIF360 reweighing by the true groups: P(g) P(y) / P(g, y)",
    needs_groups=True,
    scores_every_row=True,
)
def _groups(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return reweighing_log_weights(inputs.groups, inputs.labels).to(inputs.latents.device)


@register_strategy(
    "balanced-groups",
    False,
    "every true (group, label) cell the same total weight, as the oracle draws",
    needs_groups=True,
    scores_every_row=True,
)
def _balanced_groups(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return balanced_group_log_weights(inputs.groups, inputs.labels).to(inputs.latents.device)


@register_strategy("uniform", False, "every weight 1 (no reweighting)")
def _uniform(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    return torch.zeros(len(inputs.labels), dtype=torch.float64, device=inputs.latents.device)


def needs_errors(strategy: str) -> bool:
    """Whether `strategy` reads the early classifier's errors (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].needs_errors


# Strategies whose weights read the DB-VAE's latent means; errors and the label-based baselines do not.
LATENT_STRATEGIES = frozenset({"histogram", "joint", "errors+joint", "errors+latent"})


def needs_groups(strategy: str) -> bool:
    """Whether `strategy` reads the true group labels of the training rows (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].needs_groups


def validate(settings: WeightingSettings, allow_auto: bool = False) -> None:
    """Raise ValueError naming every setting that is out of range (one message).

    `allow_auto`: accept strategy "auto" (a fit's settings, resolved by measurement before use).
    """
    found = problems(settings)
    if settings.strategy == AUTO and not allow_auto:
        found.append("--weighting auto is chosen by `debias fit`; pass a strategy: " + ", ".join(STRATEGIES))
    if found:
        raise ValueError("; ".join(found))


def compute_weights(
    inputs: WeightingInputs, settings: WeightingSettings, vae_on_all: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling weights [N] with mean 1, and the log-weight score [N] (NaN for unscored rows).

    With `vae_on_all` every row is scored together. Otherwise (face detection) only positives
    are scored, since the VAE never learned to model negatives; negatives keep weight 1 and the
    positives' weights have mean 1, so the class balance of the data is unchanged. Strategies that
    balance labels (classes, groups, balanced-groups) score every row either way. The cap
    applies to every strategy.
    """
    validate(settings)
    latents = inputs.latents
    labels = inputs.labels.reshape(-1).to(latents.device)
    scored = scored_rows(labels, vae_on_all or STRATEGIES[settings.strategy].scores_every_row)
    score = torch.full((len(labels),), float("nan"), dtype=torch.float64, device=latents.device)
    if scored.any():
        score[scored] = STRATEGIES[settings.strategy](replace(inputs, labels=labels).rows(scored), settings).to(
            latents.device
        )
    return weights_from_scores(score, scored, settings.cap, class_strata(labels, settings)), score


def class_strata(labels: torch.Tensor, settings: WeightingSettings) -> torch.Tensor | None:
    """The labels when the weights are normalized within each class (`keep_class_shares`, for the
    strategies that read it), else None."""
    keep = settings.keep_class_shares and "keep_class_shares" in STRATEGIES[settings.strategy].reads
    return labels if keep else None


def scored_rows(labels: torch.Tensor, vae_on_all: bool) -> torch.Tensor:
    """bool [N]: the rows a strategy scores, every row with `vae_on_all`, else the positives."""
    return torch.ones_like(labels, dtype=torch.bool) if vae_on_all else labels == 1


def weights_from_scores(
    score: torch.Tensor, scored: torch.Tensor, cap: float | None, strata: torch.Tensor | None = None
) -> torch.Tensor:
    """Weights [N] (float64) from log-weight scores [N]: mean 1 over the scored rows, then capped; 1 elsewhere.

    strata [N] (e.g. the labels): mean 1 within each stratum's scored rows instead, so that the
    weights keep every stratum's share of the draws (the cap may move a little of it).
    """
    weights = torch.ones(len(score), dtype=torch.float64, device=score.device)
    if scored.any():
        parts = [scored] if strata is None else [scored & (strata == s) for s in torch.unique(strata[scored])]
        for rows in parts:
            # normalize_log_weights works in float64, so scores stored as float64 lose nothing.
            weights[rows] = normalize_log_weights(score[rows])
        weights[scored] = cap_weights(weights[scored], cap)
    return weights


def training_weights(
    latents: torch.Tensor,
    labels: torch.Tensor,
    settings: WeightingSettings,
    vae_on_all: bool,
    early_probs=None,
    groups=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`compute_weights` from latents, labels, (for the errors strategies) the early classifier's
    P(label = 1) on every training row and (for the group strategies) every row's group name."""
    return compute_weights(WeightingInputs.from_early_probs(latents, labels, early_probs, groups), settings, vae_on_all)


__all__ = [
    "AUTO",
    "COMBINATIONS",
    "JOINT_METHODS",
    "STRATEGIES",
    "Strategy",
    "WeightingInputs",
    "WeightingSettings",
    "cap_weights",
    "compute_weights",
    "effective_sample_size",
    "histogram_log_weights",
    "max_min_ratio",
    "needs_errors",
    "needs_groups",
    "normalize_log_weights",
    "register_strategy",
    "scored_rows",
    "training_weights",
    "unread_settings",
    "unread_settings_problem",
    "validate",
    "weight_summary",
    "weights_from_scores",
]
