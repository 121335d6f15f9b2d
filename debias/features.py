"""Weights for your own model: from any feature matrix (`weights_from_features`) or your classifier's mistakes
(`weights_from_errors`), without running a debias fit.

Both return numpy float64 weights with mean 1 over the rows, ready as scikit-learn's
`sample_weight` or for `debias.SampleWeights(ids, w).to_sampler(ids)`. They call the same
strategies `debias fit --weighting NAME` uses (debias.weighting), on every row.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import torch

from debias.errors import UserError
from debias.groups import blank_cells
from debias.weighting import (
    STRATEGIES,
    WeightingSettings,
    needs_errors,
    needs_groups,
    reads_latents,
    unread_settings_problem,
    validate,
)
from debias.weighting.compute import WeightingInputs, compute_weights
from debias.weighting.errors import classifier_errors


def available_strategies() -> dict[str, str]:
    """Every weighting strategy's name and a one-line description.

    Examples
    --------
    >>> import debias
    >>> sorted(debias.available_strategies())[:3]
    ['balanced-groups', 'classes', 'errors']
    """
    return {name: strategy.description for name, strategy in STRATEGIES.items()}


def _settings(strategy: str, options: dict) -> WeightingSettings:
    known = {f.name for f in fields(WeightingSettings)} - {"strategy"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"unknown weighting setting {', '.join(unknown)}; the settings are: {', '.join(sorted(known))}")
    settings = WeightingSettings(strategy=strategy, **options)
    try:
        validate(settings)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # A setting the strategy does not read would be ignored without a word (as on the command line).
    problem = unread_settings_problem([strategy], options)
    if problem:
        raise UserError(problem)
    return settings


def _labels(labels, rows: int | None) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if rows is not None and len(y) != rows:
        raise UserError(f"labels has {len(y)} rows but there are {rows} rows of features or probabilities")
    if len(y) == 0:
        raise UserError("labels is empty: weights need at least one row")
    as_int = y.astype(np.int64) if np.issubdtype(y.dtype, np.number) else None
    if as_int is None or not np.array_equal(as_int, y) or (as_int < 0).any():
        raise UserError("labels must be whole class numbers >= 0 (0/1 for a binary task), one per row")
    return as_int


def _features(features) -> torch.Tensor:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"features must be a matrix [rows, dimensions], got an array of shape {x.shape}")
    if not np.isfinite(x).all():
        raise UserError("features hold NaN or infinite values")
    return torch.from_numpy(x)


def _errors(probabilities, labels: np.ndarray) -> torch.Tensor:
    """Which rows the classifier gets wrong: P(label = 1) >= 0.5 for [N], the arg-max class for [N, C]."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim not in (1, 2) or len(p) != len(labels):
        raise UserError(
            f"probabilities must be [rows] (P(label = 1)) or [rows, classes], one row per label; got shape {p.shape} "
            f"for {len(labels)} labels"
        )
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise UserError("probabilities must be finite numbers in [0, 1]")
    if p.ndim == 2:
        return torch.from_numpy(p.argmax(axis=1) != labels)
    if not np.isin(labels, (0, 1)).all():
        raise UserError("probabilities of shape [rows] are P(label = 1): the labels must be 0 or 1")
    return classifier_errors(torch.from_numpy(p), torch.from_numpy(labels))


def _groups(groups, rows: int) -> np.ndarray:
    values = pd.Series(np.asarray(groups, dtype=object).reshape(-1))
    if len(values) != rows:
        raise UserError(f"groups has {len(values)} rows but there are {rows} labels")
    blank = blank_cells(values)
    if blank.any():
        # As a manifest's group columns: an invented group of blanks could become the worst group.
        raise UserError(
            f"groups is missing (None, NaN or empty) on {int(blank.sum())} of {rows} rows (first at row "
            f"{int(np.argmax(blank))}); every row needs a group value: give those rows a value of their own "
            "(such as 'unknown') or leave them out"
        )
    return values.astype(str).to_numpy()


def _weights(inputs: WeightingInputs, settings: WeightingSettings, positives_only: bool) -> np.ndarray:
    if positives_only and not np.isin(inputs.labels.numpy(), (0, 1)).all():
        raise UserError("positives_only needs 0/1 labels (1 marks the positives, e.g. faces)")
    weights, _ = compute_weights(inputs, settings, vae_on_all=not positives_only)
    return weights.numpy()


def weights_from_features(
    features,
    labels,
    strategy: str = "joint",
    *,
    groups=None,
    probabilities=None,
    positives_only: bool = False,
    **settings,
) -> np.ndarray:
    """Resampling weights (mean 1) for any feature matrix: your embeddings, or a DB-VAE's latent means.

    Parameters
    ----------
    features : array-like [N, D]
        One row per training sample (a pretrained model's embeddings, say). Rare rows get more
        weight by the density the strategy estimates.
    labels : array-like [N]
        Class of each row (whole numbers; 0/1 for a binary task). `joint` estimates densities
        within each class and keeps every class's share of the weight.
    strategy : str
        `joint` (default: a per-class density on the top principal directions, for any features),
        `histogram` (the DB-VAE paper's per-dimension histograms, for latents whose dimensions each
        mean something), `errors+joint` / `errors+latent` (with `probabilities`), or the label-based
        baselines `classes`, `groups`, `balanced-groups` (with `groups`), `uniform`. See
        `debias.available_strategies()`.
    groups : array-like [N], optional
        Each row's true group (e.g. "Male=1"), for `groups` (AIF360 reweighing) and `balanced-groups`.
    probabilities : array-like [N] or [N, C], optional
        An early classifier's P(label = 1) (or per-class probabilities) for the errors strategies.
    positives_only : bool
        Score only the rows labelled 1 (face detection: negatives keep weight 1).
    **settings
        Any WeightingSettings field: alpha, bins, combine, cap, errors_upweight, joint_method,
        joint_dims, joint_components, knn_k, joint_alpha.

    Returns
    -------
    numpy.ndarray [N], float64, mean 1 (over the scored rows).

    Raises
    ------
    debias.UserError (a ValueError) for inputs of the wrong shape or values, group labels with
    missing values, an unknown setting, one out of range, or one the strategy does not read.

    Examples
    --------
    >>> import numpy as np, debias
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(1000, 8)), np.r_[np.zeros(700), np.ones(300)]
    >>> w = debias.weights_from_features(X, y, strategy="joint")
    >>> round(float(w.mean()), 6), w.shape
    (1.0, (1000,))
    >>> debias.weights_from_features(np.zeros((4, 2)), [1, 0, 0, 0], strategy="classes").round(4).tolist()
    [2.0, 0.6667, 0.6667, 0.6667]
    """
    weighting = _settings(strategy, settings)
    x = _features(features)
    y = _labels(labels, len(x))
    errors = None
    if needs_errors(strategy):
        if probabilities is None:
            raise UserError(
                f"the {strategy} strategy needs probabilities: your early classifier's P(label = 1) per row"
            )
        errors = _errors(probabilities, y)
    if needs_groups(strategy) and groups is None:
        raise UserError(f"the {strategy} strategy needs groups: each row's true group, e.g. 'Male=1'")
    inputs = WeightingInputs(
        x, torch.from_numpy(y), errors=errors, groups=None if groups is None else _groups(groups, len(y))
    )
    return _weights(inputs, weighting, positives_only)


def weights_from_errors(
    probabilities,
    labels,
    upweight: float = 20.0,
    *,
    strategy: str = "errors",
    features=None,
    positives_only: bool = False,
    **settings,
) -> np.ndarray:
    """Just Train Twice weights (mean 1) from your own classifier: its mistakes weigh `upweight` times more.

    Train your classifier briefly (JTT stops early, before it memorizes the rare samples), take its
    probabilities on the training set, and train the final model with these weights.

    Parameters
    ----------
    probabilities : array-like [N] or [N, C]
        P(label = 1) per row (binary task: predicted 1 at >= 0.5), or per-class probabilities
        (predicted class: the arg-max).
    labels : array-like [N]
        True class of each row.
    upweight : float
        JTT's lambda: the weight of a mistake relative to a correct row (>= 1; JTT tuned 5-100).
    strategy : str
        `errors` (plain JTT), or with `features` `errors+joint` (times the joint density) or
        `errors+latent` (errors smoothed along the feature directions that predict them).
    features : array-like [N, D], optional
        Needed by errors+joint and errors+latent.
    positives_only : bool
        Score only the rows labelled 1 (face detection: negatives keep weight 1).
    **settings
        Any other WeightingSettings field (cap, joint_dims, ...).

    Returns
    -------
    numpy.ndarray [N], float64, mean 1.

    Examples
    --------
    >>> import debias
    >>> p = [0.9, 0.2, 0.3, 0.6]   # P(label = 1): rows 1 and 3 are mistakes
    >>> debias.weights_from_errors(p, [1, 1, 0, 0], upweight=7).round(6).tolist()
    [0.25, 1.75, 0.25, 1.75]
    """
    if not needs_errors(strategy):
        raise UserError(
            f"{strategy!r} reads no errors; pass one of: {', '.join(s for s in STRATEGIES if needs_errors(s))}"
        )
    weighting = _settings(strategy, {**settings, "errors_upweight": float(upweight)})
    y = _labels(labels, None)
    errors = _errors(probabilities, y)
    if features is None:
        if reads_latents(strategy):
            raise UserError(f"the {strategy} strategy needs features: a matrix [rows, dimensions]")
        x = torch.zeros(len(y), 1, dtype=torch.float64)
    else:
        x = _features(features)
        if len(x) != len(y):
            raise UserError(f"features has {len(x)} rows but there are {len(y)} labels")
    return _weights(WeightingInputs(x, torch.from_numpy(y), errors=errors), weighting, positives_only)


__all__ = ["available_strategies", "weights_from_errors", "weights_from_features"]
