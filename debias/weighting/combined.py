"""Strategies that combine the early classifier's errors with the latent density.

Neither signal is enough on faces (measured on CelebA with age tied to gender): errors flag most
of a rare group but also many common faces; a density of the latent means looks along lighting,
background and pose, which dominate the encoder, and misses a rare combination of traits.

errors+joint   the product of the two factors: JTT's lambda for an error, times the per-class
               joint-density weight (debias.weighting.joint). Among the errors, those in a sparse
               region of the latent space count most; among the correct ones, rare ones still get
               the density's mild boost.
errors+latent  the errors, smoothed along the latent directions that predict them: per class, a
               logistic probe of the error indicator on the latent means gives p(x), the local
               error rate; weight 1 + (lambda - 1) * p(x). JTT is the special case p = the 0/1
               indicator. A rare group the shortcut fails on sits where errors concentrate, so
               its members get a high p even when the early classifier happened to get them
               right, while an isolated error among common faces (a hard or mislabelled image)
               gets a low one. This is density along task-relevant directions: the probe's
               direction is where the errors' density differs from the class's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from debias.weighting.errors import jtt_log_weights, latent_error_probability
from debias.weighting.joint import joint_log_weights, joint_options

if TYPE_CHECKING:
    from debias.weighting.compute import WeightingInputs
    from debias.weighting.settings import WeightingSettings


def errors_joint_log_weights(
    mu: torch.Tensor, labels: torch.Tensor, errors: torch.Tensor, upweight: float, **joint
) -> torch.Tensor:
    """log(JTT factor) + per-class joint-density log-weight, [N] float64."""
    return jtt_log_weights(errors, upweight).to(mu.device) + joint_log_weights(mu, labels, **joint)


def errors_latent_log_weights(
    mu: torch.Tensor, labels: torch.Tensor, errors: torch.Tensor, upweight: float
) -> torch.Tensor:
    """log(1 + (lambda - 1) * p(error | latent, class)), [N] float64."""
    p = latent_error_probability(mu, labels, errors)
    return torch.log1p((upweight - 1.0) * p)


def errors_joint_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `errors+joint` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return errors_joint_log_weights(
        inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight, **joint_options(settings)
    )


def errors_latent_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `errors+latent` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return errors_latent_log_weights(inputs.latents, inputs.labels, inputs.errors, settings.errors_upweight)
