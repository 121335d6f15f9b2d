"""Weighting strategies: from latent means (and an early classifier's errors) to resampling weights.

Pure tensor functions behind one registry (`STRATEGIES`, name -> `Strategy`, debias.weighting.registry),
which holds every fact about a strategy. A strategy maps the `WeightingInputs` of the rows it scores
to unnormalized log-weights; `compute_weights` (and `training_weights`, from an early classifier's
probabilities) decides which rows are scored, normalizes to mean 1, applies the cap, and
`weight_summary` reports how skewed the result is (ESS, max/min ratio).

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
strategies against, exported as weights like every other. Their entries are in
debias.weighting.strategies; `register_strategy` adds one.

Importing this package loads no torch (the settings and the command line need only the registry);
the names that compute weights load it on first use.
"""

from __future__ import annotations

import importlib

from debias.weighting import strategies as _builtin  # noqa: F401  (registers the built-in strategies)
from debias.weighting.registry import (
    LEGACY_STRATEGY,
    STRATEGIES,
    Caption,
    Strategy,
    auto_candidates,
    caption_values,
    get_strategy,
    needs_errors,
    needs_groups,
    reads_latents,
    register_strategy,
    unread_settings,
    unread_settings_problem,
)
from debias.weighting.settings import AUTO, COMBINATIONS, JOINT_METHODS, WeightingSettings, validate

# Public names that need torch -> the module that defines them, imported on first access (PEP 562).
_LAZY = {
    "WeightingInputs": "debias.weighting.compute",
    "compute_weights": "debias.weighting.compute",
    "class_strata": "debias.weighting.compute",
    "scored_rows": "debias.weighting.compute",
    "training_weights": "debias.weighting.compute",
    "weights_from_scores": "debias.weighting.compute",
    "cap_weights": "debias.weighting.stats",
    "effective_sample_size": "debias.weighting.stats",
    "max_min_ratio": "debias.weighting.stats",
    "normalize_log_weights": "debias.weighting.stats",
    "weight_summary": "debias.weighting.stats",
    "histogram_log_weights": "debias.weighting.histogram",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'debias.weighting' has no attribute {name!r}")


__all__ = [
    "AUTO",
    "COMBINATIONS",
    "JOINT_METHODS",
    "LEGACY_STRATEGY",
    "STRATEGIES",
    "Caption",
    "Strategy",
    "WeightingSettings",
    "auto_candidates",
    "caption_values",
    "get_strategy",
    "needs_errors",
    "needs_groups",
    "reads_latents",
    "register_strategy",
    "unread_settings",
    "unread_settings_problem",
    "validate",
    *_LAZY,
]
