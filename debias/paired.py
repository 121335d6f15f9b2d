"""Paired tests of two models on the same images (the report's test split, the fit's validation check): is a difference more than noise?

- A group's accuracy (or the overall accuracy): McNemar's exact test, a binomial test of the
  discordant pairs (images exactly one model gets right) against 1/2 (scipy.stats.binomtest).
- Worst-group accuracy: a paired permutation test: under the null that the two models are
  exchangeable, each image's two predictions are swapped at random and the worst-group
  difference recomputed (see `worst_group_test` for how it is computed without swapping rows).

Why a permutation test and not the paired bootstrap for worst-group accuracy: the bootstrap's
p-value comes from resampling the observed pairs, so when a small group's discordant pairs all
go one way (8 of 8 images fixed, none broken) every resample shows the same change and p is 0;
the permutation test is exact under its null at any count (with a single group it is McNemar's
exact test), and with few discordant pairs scipy enumerates every swap instead of sampling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binom, binomtest

SIGNIFICANCE = 0.05
RESAMPLES = 9999  # p to about +-0.004 near 0.05 (with few discordant images every outcome is counted instead)
SMALL_GROUP = 30  # test images under which a group's count is named next to a claim about it
EXACT_LIMIT = 200_000  # outcomes enumerated exactly (a few MB); beyond it, RESAMPLES random draws
# Worst-group differences are ratios of small integers; equal ones may differ in the last bits.
TOLERANCE = 1e-12


def mcnemar(base_correct: np.ndarray, other_correct: np.ndarray) -> dict:
    """McNemar's exact test of two models' accuracy on the same rows.

    Returns the change in accuracy (other minus base), the discordant counts (`fixed`: rows only
    the other model gets right; `broken`: rows only the base gets right) and the two-sided p.
    No discordant row means no evidence of a difference: p = 1.
    """
    base_correct, other_correct = np.asarray(base_correct, bool), np.asarray(other_correct, bool)
    fixed = int(np.sum(other_correct & ~base_correct))
    broken = int(np.sum(base_correct & ~other_correct))
    p = 1.0 if fixed + broken == 0 else float(binomtest(fixed, fixed + broken, 0.5).pvalue)
    n = len(base_correct)
    return {
        "difference": (fixed - broken) / n if n else float("nan"),
        "fixed": fixed,
        "broken": broken,
        "count": n,
        "p_value": p,
    }


def worst_group_test(
    base_correct: np.ndarray, other_correct: np.ndarray, groups, resamples: int = RESAMPLES, seed: int = 0
) -> dict:
    """Paired permutation test of the worst-group accuracy (other minus base) over the same rows.

    Swapping a row's two predictions changes nothing where the models agree; where they disagree
    exactly one is right, and a random swap makes it the other model with probability 1/2. So
    under the null, group g's count of discordant rows the other model gets right is
    Binomial(d_g, 1/2), independently across groups: the permutation distribution, drawn without
    materialising a single swap (scipy.stats.permutation_test took 15 s per test on CelebA's
    20k test rows; this takes milliseconds). When the groups' discordant counts allow at most
    EXACT_LIMIT outcomes, every outcome is enumerated with its binomial probability: an exact p.
    """
    base_correct, other_correct = np.asarray(base_correct, bool), np.asarray(other_correct, bool)
    codes, _ = pd.factorize(pd.Series(np.asarray(groups).astype(str)))
    sizes = np.bincount(codes).astype(float)
    both = np.bincount(codes, weights=base_correct & other_correct, minlength=len(sizes))
    discordant = np.bincount(codes, weights=base_correct != other_correct, minlength=len(sizes)).astype(int)

    def statistic(other_right: np.ndarray) -> np.ndarray:
        # other_right [..., groups]: discordant rows per group the other model gets right.
        return ((both + other_right) / sizes).min(axis=-1) - ((both + discordant - other_right) / sizes).min(axis=-1)

    fixed = np.bincount(codes, weights=other_correct & ~base_correct, minlength=len(sizes))
    observed = float(statistic(fixed))
    outcomes = int(np.prod(discordant + 1.0))
    if outcomes <= EXACT_LIMIT:
        grids = np.meshgrid(*[np.arange(d + 1) for d in discordant], indexing="ij")
        other_right = np.stack([g.ravel() for g in grids], axis=-1)
        probability = np.prod([binom.pmf(other_right[:, i], d, 0.5) for i, d in enumerate(discordant)], axis=0)
        values = statistic(other_right)
        greater = probability[values >= observed - TOLERANCE].sum()
        less = probability[values <= observed + TOLERANCE].sum()
        exact, drawn = True, 0
    else:
        values = statistic(np.random.default_rng(seed).binomial(discordant, 0.5, size=(resamples, len(sizes))))
        # +1 on both sides counts the observed arrangement among the draws, so p is never 0.
        greater = (1 + np.sum(values >= observed - TOLERANCE)) / (resamples + 1)
        less = (1 + np.sum(values <= observed + TOLERANCE)) / (resamples + 1)
        exact, drawn = False, resamples
    return {
        "difference": observed,
        "p_value": float(min(1.0, 2 * min(greater, less))),
        "exact": exact,
        "resamples": drawn,
    }


def compare_predictions(
    base: pd.DataFrame, other: pd.DataFrame, groups: pd.Series, resamples: int = RESAMPLES, seed: int = 0
) -> dict:
    """Paired tests of `other` against `base`, two prediction tables over the same rows in the same order.

    Each table has `label` and `pred`; `groups` names each row's group. Returns the overall
    accuracy change (McNemar), the worst-group accuracy change (permutation test) and each
    group's accuracy change (McNemar, with the group's count).
    """
    labels = base["label"].to_numpy()
    base_correct = base["pred"].to_numpy() == labels
    other_correct = other["pred"].to_numpy() == labels
    groups = pd.Series(np.asarray(groups).astype(str))
    by_group = {}
    for name in sorted(groups.unique()):
        rows = (groups == name).to_numpy()
        by_group[name] = mcnemar(base_correct[rows], other_correct[rows])
    return {
        "accuracy": mcnemar(base_correct, other_correct),
        "worst_group_accuracy": worst_group_test(base_correct, other_correct, groups, resamples, seed),
        "groups": by_group,
    }


def format_p(p: float) -> str:
    """'p = 0.41', 'p = 0.0078', 'p < 0.001': two significant digits, never a bare 0."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}"


def significance_note(p: float) -> str:
    """'significant (p = 0.003)' at p < 0.05, else 'not significant (p = 0.41)'."""
    return f"{'significant' if p < SIGNIFICANCE else 'not significant'} ({format_p(p)})"
