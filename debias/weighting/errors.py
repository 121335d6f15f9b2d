"""Weights from an early-stopped classifier's mistakes (Just Train Twice, Liu et al., ICML 2021).

A classifier trained briefly with uniform sampling learns the easy cues first, spurious ones
included; the training samples it still gets wrong are disproportionately those the shortcut
fails on (blond men, when "male" predicts "not blond"). JTT trains the final model with those
samples upweighted by a factor lambda (`errors_upweight`): weight lambda for an error, 1
otherwise, then normalized to mean 1. The early epoch (`errors_epoch`) and lambda are its two
settings; the JTT paper tuned lambda in {5, 20, 50, 100} and T of a few epochs.

Errors are a noisy signal: they catch most of a rare group but also hard or mislabelled common
samples. `latent_error_probability` smooths them along the latent directions that predict them
(see debias.weighting.combined).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from debias.weighting.joint import standardize

if TYPE_CHECKING:
    from debias.weighting.compute import WeightingInputs
    from debias.weighting.settings import WeightingSettings

# Inverse L2 strength of the error probe, on standardized latents. 1.0 is scikit-learn's
# default; at a few hundred errors and up to 100 dimensions it keeps the probe from fitting
# the individual errors (which would give back the raw 0/1 indicator).
_PROBE_C = 1.0


def classifier_errors(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Which rows [N] (bool) a classifier gets wrong, from its P(label = 1) per row: predicted 1 at p >= 0.5."""
    return (probs.reshape(-1) >= 0.5) != labels.reshape(-1).to(torch.bool)


def early_error_rates(probs: np.ndarray, labels: np.ndarray) -> dict[str, float | bool]:
    """How an early classifier (P(label = 1) per training row) compares with always predicting the majority class.

    error_rate           the share of rows it gets wrong
    majority_error_rate  the share that always predicting the training split's majority class gets wrong
    informative          error_rate < majority_error_rate: its errors can single out a minority.

    JTT presumes the early classifier has learned the shortcut. One that has not yet (worse than the
    constant prediction, as a classifier after one epoch on a few thousand CelebA images can be)
    errs on much of a whole class, and upweighting those errors shifts the sampling toward that
    class instead of toward the rare people: measured on the CelebA sample (seed 2, epoch 1: 39%
    errors against 13% for the constant prediction), the final classifiers then predicted the
    majority class for every test image.
    """
    y = np.asarray(labels).reshape(-1).astype(bool)
    n_errors = int(classifier_errors(torch.as_tensor(np.asarray(probs)), torch.from_numpy(y)).sum())
    n_minority = int(min(y.sum(), len(y) - y.sum()))  # counts, not rates: an exact comparison
    return {
        "error_rate": n_errors / len(y),
        "majority_error_rate": n_minority / len(y),
        "informative": n_errors < n_minority,
    }


def jtt_log_weights(errors: torch.Tensor, upweight: float) -> torch.Tensor:
    """log(lambda) for the rows the early classifier got wrong, 0 for the others (float64)."""
    return errors.to(torch.float64) * math.log(upweight)


def latent_error_probability(mu: torch.Tensor, labels: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """P(error | latent means, class) [N] (float64) from a logistic probe fitted per class.

    Per class, an L2-regularized logistic regression of the error indicator on the standardized
    latent means: its probability is the local error rate along the latent directions that
    predict errors, whatever else (lighting, background) dominates the latent's variance. A
    class without both errors and correct samples keeps its raw 0/1 indicator.
    """
    from sklearn.linear_model import LogisticRegression

    x = mu.detach().double().cpu().numpy()
    y = labels.detach().cpu().numpy().reshape(-1)
    err = errors.detach().cpu().numpy().reshape(-1).astype(bool)
    out = err.astype(np.float64)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        if err[rows].all() or not err[rows].any():
            continue
        probe = LogisticRegression(C=_PROBE_C, max_iter=1000)
        z = standardize(x[rows])
        probe.fit(z, err[rows])
        out[rows] = probe.predict_proba(z)[:, 1]
    return torch.from_numpy(out).to(mu.device)


def errors_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `errors` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return jtt_log_weights(inputs.errors, settings.errors_upweight)
