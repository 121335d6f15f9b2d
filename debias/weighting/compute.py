"""From a strategy's log-weights to sampling weights: which rows are scored, mean 1, the cap.

`compute_weights` runs the strategy named by the settings (debias.weighting.registry) on the rows
it scores, normalizes to mean 1 (within each class with `keep_class_shares`) and applies the cap;
`training_weights` is the same from latents, labels and an early classifier's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from debias.weighting.errors import classifier_errors
from debias.weighting.registry import get_strategy
from debias.weighting.settings import WeightingSettings, validate
from debias.weighting.stats import cap_weights, normalize_log_weights


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
    strategy = get_strategy(settings.strategy)
    latents = inputs.latents
    labels = inputs.labels.reshape(-1).to(latents.device)
    scored = scored_rows(labels, vae_on_all or strategy.scores_every_row)
    score = torch.full((len(labels),), float("nan"), dtype=torch.float64, device=latents.device)
    if scored.any():
        score[scored] = strategy(replace(inputs, labels=labels).rows(scored), settings).to(latents.device)
    return weights_from_scores(score, scored, settings.cap, class_strata(labels, settings)), score


def class_strata(labels: torch.Tensor, settings: WeightingSettings) -> torch.Tensor | None:
    """The labels when the weights are normalized within each class (`keep_class_shares`, for the
    strategies that read it), else None."""
    keep = settings.keep_class_shares and "keep_class_shares" in get_strategy(settings.strategy).reads
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
