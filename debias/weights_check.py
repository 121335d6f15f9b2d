"""Do the weights lose to uniform sampling? A model trained by the weights against the uniform one, on validation.

A fit trains the uniform baseline beside the models that draw by the weights (the DB-VAE, and the
plain sampler over weights.csv), so it can tell on its own validation split, before the user looks at
the test split, whether the weights hurt. Three figures are compared on the same validation images:

    accuracy            McNemar's exact test (debias.paired.mcnemar)
    worst class         the smaller per-label accuracy: the paired permutation test with the labels as groups
    worst group         over the `--val-groups` attributes crossed with the label, when given (validation
                        labels only; training never sees them)

A model *loses* when one of them is lower than uniform's and the paired test says the difference is
more than noise (p < SIGNIFICANCE). The same rule keeps `--weighting auto` from choosing a strategy
that loses to its uniform candidate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debias.groups import accuracy_by_group, group_labels
from debias.paired import SIGNIFICANCE, format_p, mcnemar, worst_group_test

ACCURACY, WORST_CLASS, WORST_GROUP = "accuracy", "worst_class_accuracy", "worst_group_accuracy"
FIGURE_NAMES = {ACCURACY: "accuracy", WORST_CLASS: "worst class", WORST_GROUP: "worst group"}


def _losses(figures: dict) -> list[str]:
    return [
        name
        for name, test in figures.items()
        if isinstance(test, dict) and test["difference"] < 0 and test["p_value"] < SIGNIFICANCE
    ]


def compare_with_uniform(
    labels: np.ndarray,
    uniform_probs: np.ndarray,
    probs: np.ndarray,
    attributes: pd.DataFrame | None = None,
    val_groups: list[str] | tuple[str, ...] = (),
) -> dict:
    """A weighted model's validation figures against uniform's, each with its paired test, and whether it loses.

        compare_with_uniform(valid.labels, probs["uniform"], probs["dbvae"])
        # {"accuracy": {"uniform": 0.94, "weighted": 0.92, "difference": -0.02, "p_value": 0.001, ...},
        #  "worst_class_accuracy": {...}, "loses": ["accuracy"]}

    `loses` names the figures on which the weighted model is significantly worse (empty: no loss
    beyond noise).
    """
    labels = np.asarray(labels)
    uniform_pred, pred = (
        (np.asarray(uniform_probs) >= 0.5).astype(np.int64),
        (np.asarray(probs) >= 0.5).astype(np.int64),
    )
    base, other = uniform_pred == labels, pred == labels
    result = {ACCURACY: {"uniform": float(base.mean()), "weighted": float(other.mean()), **mcnemar(base, other)}}
    views = {WORST_CLASS: pd.Series(labels.astype(str))}
    if val_groups:
        views[WORST_GROUP] = group_labels(attributes, list(val_groups), labels)
    for name, groups in views.items():
        uniform, weighted = accuracy_by_group(labels, uniform_pred, groups), accuracy_by_group(labels, pred, groups)
        result[name] = {
            "uniform": uniform["worst_group_accuracy"],
            "weighted": weighted["worst_group_accuracy"],
            "uniform_worst": uniform["worst_group"],
            "weighted_worst": weighted["worst_group"],
            **worst_group_test(base, other, groups),
        }
    result["loses"] = _losses(result)
    return result


def _candidate_verdict(name: str, figures: dict, criterion: str) -> str:
    check = figures.get("versus_uniform")
    if check is None:  # recorded before uniform was the reference
        return f"{name} {figures[criterion]:.1%}"
    gain = check[criterion]
    text = f"{name} {gain['weighted']:.1%} against {gain['uniform']:.1%} ({format_p(gain['p_value'])})"
    if check["loses"]:
        text += ", but it loses " + " and ".join(FIGURE_NAMES[f] for f in check["loses"])
    return text


def auto_choice_sentence(selection: dict) -> str:
    """What `--weighting auto` chose and why, in one sentence, from config.json's "weighting_selection"."""
    criterion = selection["criterion"]
    groups = selection.get("val_groups") or []
    figure = FIGURE_NAMES[criterion] + (f" over {', '.join(groups)}" if groups else "")
    others = {name: f for name, f in selection["candidates"].items() if name != "uniform"}
    verdicts = "; ".join(_candidate_verdict(name, f, criterion) for name, f in others.items())
    epochs = f"after {selection['epochs']} epoch(s) each"
    if selection["chosen"] == "uniform":
        return (
            f"--weighting auto kept uniform sampling (every weight 1): no candidate raised the validation {figure} "
            f"accuracy beyond noise without losing to uniform elsewhere ({verdicts}; {epochs})."
        )
    return f"--weighting auto chose {selection['chosen']}: validation {figure} accuracy {verdicts}; {epochs}" + (
        f"; among the candidates that beat uniform, the best within {selection['accuracy_budget']:g} points of "
        "the most accurate."
        if len(others) > 1
        else "."
    )


# Where `--weighting auto`, the default, was measured (BENCHMARKS.md, "Do the weights help?": every testbed,
# 3 seeds); the report prints it after auto's choice.
AUTO_MEASURED = (
    "auto over uniform sampling and JTT, the default, was measured on nine testbeds, 3 seeds each "
    '(BENCHMARKS.md, "Do the weights help?"): where the early errors are the rare groups it kept JTT and '
    "0.62-0.89 of the group-balanced oracle's worst-group gain; where JTT would have cost accuracy (10% "
    "flipped labels with a spurious trait: 37 points; CelebA Smiling: 5-9) it kept every weight 1, within 1.3 "
    "points of uniform's accuracy. It is known to miss most of the gain where the early classifier errs on a "
    "whole class rather than on the rare groups (CelebA Young: 0.18 of the oracle's gain) and under label "
    "noise (0.51 with flipped labels; none with flipped labels and a spurious trait)."
)


# The models that draw by the weights, checked against uniform sampling on validation.
WEIGHTED_MODELS = ("dbvae", "sampler")


def check_weights(probs: dict[str, np.ndarray], valid, val_groups) -> dict:
    """Model -> its validation figures against the uniform model's (debias.weights_check), for the weighted models;
    {} when the fit trained no uniform model."""
    if "uniform" not in probs:
        return {}
    return {
        name: compare_with_uniform(valid.labels, probs["uniform"], probs[name], valid.attributes, val_groups)
        for name in WEIGHTED_MODELS
        if name in probs
    }
