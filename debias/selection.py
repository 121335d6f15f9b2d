"""`--weighting auto`: choose a weighting strategy by measuring it on the validation split.

Each candidate strategy trains a short DB-VAE run on the same data (debias.fit.train_candidate);
its validation predictions are scored here and the best one is kept. The criterion is

- worst-class accuracy (the smallest per-label accuracy) by default: it needs no group labels,
  and a strategy that helps a rare group of one class usually raises that class's accuracy;
- worst-group accuracy over the given attributes crossed with the label, when the user supplies
  group labels for the validation split only (`--val-groups`), as group-robustness methods
  (JTT, DFR) tune on a labelled validation set. Training never sees them.

Only candidates whose validation accuracy is within an accuracy budget (2 points by default,
`--auto-accuracy-budget`) of the most accurate candidate's compete: measured on the CelebA sample,
the joint density won on worst-group accuracy while costing 4 points of accuracy (BENCHMARKS.md,
"Weighting strategies on rare combinations"), more than a user trading accuracy for fairness asks.
Ties (to 1e-9) go to the higher mean accuracy, then to the earlier candidate in the list.
Pure functions of arrays; no training here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debias.report.metrics import accuracy_by_group, group_labels

WORST_CLASS = "worst_class_accuracy"
WORST_GROUP = "worst_group_accuracy"
# Tried by default, in this order: every registered strategy that reweights. `uniform` (no
# reweighting) can be added with --auto-strategies, to let validation say that none helps.
DEFAULT_CANDIDATES = ("histogram", "joint", "errors", "errors+joint", "errors+latent")


def worst_class_accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """The smallest per-label accuracy."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    return float(min((pred[labels == c] == c).mean() for c in np.unique(labels)))


def validation_figures(labels: np.ndarray, probs: np.ndarray, attributes: pd.DataFrame | None = None,
                       val_groups: list[str] | tuple[str, ...] = ()) -> dict:
    """accuracy, worst_class_accuracy and (with val_groups) worst_group_accuracy / worst_group of predictions."""
    labels = np.asarray(labels)
    pred = (np.asarray(probs) >= 0.5).astype(np.int64)
    figures = {"accuracy": float((pred == labels).mean()), WORST_CLASS: worst_class_accuracy(labels, pred)}
    if val_groups:
        by_group = accuracy_by_group(labels, pred, group_labels(attributes, list(val_groups), labels))
        figures[WORST_GROUP] = by_group["worst_group_accuracy"]
        figures["worst_group"] = by_group["worst_group"]
    return figures


def choose(candidates: dict[str, dict], criterion: str, accuracy_budget: float | None = None) -> str:
    """The candidate with the highest `criterion`, ties broken by accuracy, then by order.

    With `accuracy_budget` (a fraction, 0.02 = 2 points), only the candidates whose accuracy is at
    most that far below the most accurate candidate's compete.
    """
    if not candidates:
        raise ValueError("no candidate strategies to choose from")
    if accuracy_budget is not None:
        top = max(figures["accuracy"] for figures in candidates.values())
        candidates = {name: f for name, f in candidates.items() if f["accuracy"] >= top - accuracy_budget - 1e-9}
    best, best_key = None, None
    for name, figures in candidates.items():
        key = (round(figures[criterion], 9), round(figures["accuracy"], 9))
        if best_key is None or key > best_key:
            best, best_key = name, key
    return best
