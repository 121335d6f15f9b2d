"""What the run's weighting strategy is, in words: every caption that depends on it comes from here.

A report on an `errors+joint` run must not say that rare-looking images in the DB-VAE's latent
space get large weights, nor that histograms are taken along the traversed axes. `describe` reads
the strategy a run actually used (config.json `weighting_strategy`, the settings, and for `auto`
what it chose) and fills in the sentences of its registry entry (debias.weighting.registry.Caption).
"""

from __future__ import annotations

from dataclasses import dataclass

from debias.weighting import LEGACY_STRATEGY, STRATEGIES, WeightingSettings, caption_values
from debias.weights_check import auto_choice_sentence


@dataclass(frozen=True)
class WeightingText:
    """The sentences about one run's weights.

    name            the strategy the weights came from (auto resolved to its choice)
    how             one sentence: what the weights are computed from
    large_weights   what the images with large weights are (caption of the thumbnails)
    latent_role     what the DB-VAE's reconstructions and traversals mean for these weights
    traversal_axes  the end of the traversal caption: how these axes relate to the weights
    uses_latents    whether the weights read the DB-VAE's latent means
    uses_group_labels  whether the weights read the true group labels
    measured        where the strategy was measured to help and to fail (empty: not measured)
    """

    name: str
    how: str
    large_weights: str
    latent_role: str
    traversal_axes: str
    uses_latents: bool
    uses_group_labels: bool
    measured: str = ""


def _weighting_settings(config: dict) -> dict:
    return (config.get("settings") or {}).get("weighting") or {}


def strategy_name(config: dict) -> str | None:
    """The strategy the run's weights came from: config.json's resolved one, else auto's choice, else the setting."""
    chosen = config.get("weighting_strategy") or (config.get("weighting_selection") or {}).get("chosen")
    return chosen or _weighting_settings(config).get("strategy")


def run_settings(config: dict, name: str) -> WeightingSettings:
    """The weighting settings the run's weights came from (strategy `name`; what it left out, the defaults)."""
    known = set(WeightingSettings.__dataclass_fields__)
    recorded = {k: v for k, v in _weighting_settings(config).items() if k in known}
    return WeightingSettings.from_record({**recorded, "strategy": name})


def _errors_clause(settings: WeightingSettings, early: dict | None) -> str:
    epoch = early["epoch"] if early else settings.errors_epoch
    clause = (
        f"the training images the uniform baseline got wrong after epoch {epoch} weigh "
        f"{settings.errors_upweight:g}x more (Just Train Twice)"
    )
    if early and early.get("informative") is False:
        clause += (
            f"; no epoch's classifier erred less than always predicting the majority class "
            f"({early['error_rate']:.1%} against {early['majority_error_rate']:.1%}), so these errors mark "
            "a class rather than rare images"
        )
    return clause


def describe(config: dict) -> WeightingText:
    """The sentences for the strategy a run used (config.json as a dict), from the strategy's registry entry."""
    name = strategy_name(config) or LEGACY_STRATEGY
    strategy = STRATEGIES.get(name)
    uses_groups = bool(config.get("uses_group_labels")) or (strategy is not None and strategy.needs_groups)
    if strategy is None:  # a strategy this version of debias does not know
        how, large, role, axes = (
            f"Weights from the `{name}` strategy.",
            "Captions: each image's weight and group.",
            "The pictures below show what the DB-VAE model learned.",
            "the latent means the strategy may read",
        )
    else:
        settings = run_settings(config, name)
        values = caption_values(settings, _errors_clause(settings, config.get("early_errors")))
        how, large, role, axes = (
            text.format(**values)
            for text in (
                strategy.caption.how,
                strategy.caption.large_weights,
                strategy.latent_role,
                strategy.traversal_axes,
            )
        )
    if uses_groups and "group labels" not in how:
        how += " They use the true group labels."
    if strategy is not None and "keep_class_shares" in strategy.reads and settings.keep_class_shares:
        how += " The weights are normalized within each class, so every class keeps its share of the draws."
    uses_latents = strategy is not None and strategy.reads_latents
    measured = strategy.caption.measured if strategy is not None else ""
    return WeightingText(name, how, large, role, axes, uses_latents, uses_groups, measured)


def auto_sentence(config: dict) -> str | None:
    """What `--weighting auto` chose and why (debias.weights_check.auto_choice_sentence) for an auto run, else None."""
    selection = config.get("weighting_selection")
    return auto_choice_sentence(selection) if selection else None
