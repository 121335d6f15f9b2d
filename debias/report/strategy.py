"""What the run's weighting strategy is, in words: every caption that depends on it comes from here.

A report on an `errors+joint` run must not say that rare-looking images in the DB-VAE's latent
space get large weights, nor that histograms are taken along the traversed axes. `describe` reads
the strategy a run actually used (config.json `weighting_strategy`, the settings, and for `auto`
what it chose) and returns the sentences the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from debias.weighting import LATENT_STRATEGIES, STRATEGIES

# Strategies that read the true group labels (config.json also says so: "uses_group_labels").
GROUP_LABEL_STRATEGIES = {"groups", "balanced-groups"}


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
    """

    name: str
    how: str
    large_weights: str
    latent_role: str
    traversal_axes: str
    uses_latents: bool
    uses_group_labels: bool


def _weighting_settings(config: dict) -> dict:
    return (config.get("settings") or {}).get("weighting") or {}


def strategy_name(config: dict) -> str | None:
    """The strategy the run's weights came from: config.json's resolved one, else auto's choice, else the setting."""
    chosen = config.get("weighting_strategy") or (config.get("weighting_selection") or {}).get("chosen")
    return chosen or _weighting_settings(config).get("strategy")


def _errors_clause(w: dict, early: dict | None) -> str:
    epoch = early["epoch"] if early else w.get("errors_epoch", 1)
    upweight = w.get("errors_upweight", 20)
    clause = (
        f"the training images the uniform baseline got wrong after epoch {epoch} weigh {upweight:g}x more "
        "(Just Train Twice)"
    )
    if early and early.get("informative") is False:
        clause += (
            f"; no epoch's classifier erred less than always predicting the majority class "
            f"({early['error_rate']:.1%} against {early['majority_error_rate']:.1%}), so these errors mark "
            "a class rather than rare images"
        )
    return clause


def describe(config: dict) -> WeightingText:
    """The sentences for the strategy a run used (config.json as a dict)."""
    name = strategy_name(config) or "histogram"
    w = _weighting_settings(config)
    early = config.get("early_errors")
    uses_groups = bool(config.get("uses_group_labels")) or name in GROUP_LABEL_STRATEGIES
    not_latent_role = (
        "These weights do not read the DB-VAE's latent space: the pictures below show what the DB-VAE model "
        "learned while drawing by them, not how the weights were made."
    )
    joint_how = (
        f"a joint density of the DB-VAE's latent means per class on their top {w.get('joint_dims', 4)} principal "
        f"directions ({w.get('joint_method', 'gmm')})"
    )
    texts = {
        "histogram": (
            "Weights from per-dimension histograms of the DB-VAE's latent means (the paper's method: "
            f"alpha {w.get('alpha', 0.001):g}, {w.get('bins', 10)} bins, combined by {w.get('combine', 'max')}): "
            "an image whose latent code is rare along some dimension is drawn more often.",
            "Images whose latent code is rare along some dimension of the DB-VAE's latent space get large weights.",
            "The weights are read off the DB-VAE's latent means: if the reconstructions all look alike, the "
            "weights cannot tell the images apart either.",
            "the histograms behind the weights are taken along these axes",
            True,
        ),
        "joint": (
            f"Weights from {joint_how}: an image in a sparse region of the latent space is drawn more often.",
            "Images in sparse regions of the DB-VAE's latent space (within their class) get large weights.",
            "The weights are read off the DB-VAE's latent means: if the reconstructions all look alike, the "
            "weights cannot tell the images apart either.",
            "the joint density behind the weights is taken on the top principal directions of the latent means, "
            "which mix these axes",
            True,
        ),
        "errors": (
            f"Weights from an early classifier's errors: {_errors_clause(w, early)}. The DB-VAE's latent space "
            "plays no part in them.",
            "Images the early uniform classifier got wrong get large weights.",
            not_latent_role,
            "these axes play no part in the weights",
            False,
        ),
        "errors+joint": (
            f"Weights from the product of two factors: {_errors_clause(w, early)}, and {joint_how}.",
            "Images the early uniform classifier got wrong get large weights, the more so in sparse regions of "
            "the DB-VAE's latent space.",
            "The joint-density factor of the weights is read off the DB-VAE's latent means; the errors factor "
            "does not depend on them.",
            "the joint-density factor is taken on the top principal directions of the latent means, which mix "
            "these axes",
            True,
        ),
        "errors+latent": (
            f"Weights from an early classifier's errors smoothed over the DB-VAE's latent space: "
            f"{_errors_clause(w, early)}, spread by a per-class logistic probe of those errors on the latent means "
            "to the images that look like them.",
            "Images that look, in the DB-VAE's latent space, like those the early uniform classifier got wrong get "
            "large weights.",
            "The probe behind the weights reads the DB-VAE's latent means: what the latent space cannot tell "
            "apart, the weights cannot either.",
            "the probe behind the weights reads these latent means",
            True,
        ),
        "uniform": (
            "No reweighting: every training image has weight 1.",
            "Every weight is 1.",
            not_latent_role,
            "these axes play no part in the weights",
            False,
        ),
        "classes": (
            "Weights that balance the classes: each label gets an equal share of the draws (labels only, no "
            "latent space).",
            "Images of the rarer class get large weights.",
            not_latent_role,
            "these axes play no part in the weights",
            False,
        ),
        "groups": (
            "Weights from the true group labels (--groups), which debias otherwise never uses for training.",
            "Images of the groups the group labels mark as rare get large weights.",
            not_latent_role,
            "these axes play no part in the weights",
            False,
        ),
        "balanced-groups": (
            "Weights that balance the true --groups cells (group labels crossed with the label): each cell gets an "
            "equal share of the draws. They use the group labels, which debias otherwise never uses for training.",
            "Images of the rarest --groups cells get large weights.",
            not_latent_role,
            "these axes play no part in the weights",
            False,
        ),
    }
    how, large, role, axes, latent = texts.get(
        name,
        (
            f"Weights from the `{name}` strategy.",
            "Captions: each image's weight and group.",
            "The pictures below show what the DB-VAE model learned.",
            "the latent means the strategy may read",
            name in LATENT_STRATEGIES,
        ),
    )
    if uses_groups and "group labels" not in how:
        how += " They use the true group labels."
    reads_shares = name in STRATEGIES and "keep_class_shares" in STRATEGIES[name].reads
    if w.get("keep_class_shares") and reads_shares:
        how += " The weights are normalized within each class, so every class keeps its share of the draws."
    return WeightingText(name, how, large, role, axes, latent, uses_groups)


def auto_sentence(config: dict) -> str | None:
    """'--weighting auto chose errors+joint ...' for an auto run, else None."""
    selection = config.get("weighting_selection")
    if not selection:
        return None
    criterion = selection["criterion"].replace("_", " ")
    groups = selection.get("val_groups") or []
    return (
        f"--weighting auto chose {selection['chosen']} among {', '.join(selection['candidates'])}: "
        f"the best validation {criterion}"
        + (f" over {', '.join(groups)} (validation labels only)" if groups else "")
        + (
            f" among the candidates within {selection['accuracy_budget']:g} points of the most accurate one's "
            "validation accuracy"
            if "accuracy_budget" in selection
            else ""
        )
        + f", after {selection['epochs']} epoch(s) each."
    )
