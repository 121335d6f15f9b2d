"""Joint density of the latent means, per class: rare *combinations* of common values.

Per-dimension histograms see a sample that is rare along one latent direction. A blond man is
rare only as a combination (blond is common, male is common), so his per-dimension densities are
ordinary. A joint density sees the combination:

1. Per class (a rare combination is rare *within* its label: blond men among the blond), the
   latent means are standardized per dimension and projected on their top `joint_dims` principal
   directions. A handful of dimensions: density estimates in 100 dimensions see every sample as
   alone, and the top directions hold most of what the encoder varies.
2. The density there is a Gaussian mixture (`joint_method="gmm"`, `joint_components`
   components, full covariances) or a k-nearest-neighbour estimate (`"knn"`:
   p ~ 1 / r_k(x)^d with r_k the distance to the k-th nearest other sample of the class).
3. Weight ~ 1 / (p(x) / median p + joint_alpha): the density relative to the class's median
   sample, smoothed like the paper's alpha. joint_alpha = 0.1 bounds a sample's weight at about
   10x that of a typical sample (whose relative density is near 1), so a few outliers in the
   tails of the mixture cannot take the whole sampling budget.
4. Each class keeps its share of the total weight with `--keep-class-shares` (the default, applied
   to every label-free strategy by debias.weighting.weights_from_scores), so reweighting does not
   change the class balance of the data.

Everything is deterministic: PCA by SVD, the mixture fitted with a fixed random_state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from debias.weighting.compute import WeightingInputs
    from debias.weighting.settings import WeightingSettings

# Ridge added to the diagonal of every mixture covariance, in units of the standardized
# latents' variance: keeps a component that caught a few near-identical samples from
# collapsing to a spike with an infinite density.
_REG_COVAR = 1e-3
# At least this many samples per mixture component, so small classes get fewer components.
_MIN_PER_COMPONENT = 20
# The mixture is fitted on at most this many rows of a class (evenly spaced, so deterministic) and
# scores them all: 20,000 points pin down 8 components in 4 dimensions, and EM on a 160,000-image
# class (CelebA) would cost a minute per epoch.
_MAX_FIT_ROWS = 20000


def standardize(x: np.ndarray) -> np.ndarray:
    """Columns with mean 0 and standard deviation 1 (constant columns become 0)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def principal_projection(x: np.ndarray, dims: int) -> np.ndarray:
    """Standardized x [n, D] on its top `dims` principal directions, whitened: [n, min(dims, D, n - 1)]."""
    z = standardize(x)
    k = max(1, min(dims, z.shape[1], len(z) - 1))
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    proj = z @ vt[:k].T
    scale = s[:k] / math.sqrt(max(len(z) - 1, 1))
    return proj / np.where(scale > 0, scale, 1.0)


def gmm_log_density(x: np.ndarray, components: int, seed: int = 0) -> np.ndarray:
    """Log density of each row of x [n, d] under a Gaussian mixture fitted to x."""
    from sklearn.mixture import GaussianMixture

    k = max(1, min(components, len(x) // _MIN_PER_COMPONENT))
    gmm = GaussianMixture(n_components=k, covariance_type="full", reg_covar=_REG_COVAR, random_state=seed, max_iter=200)
    fit_rows = np.unique(np.linspace(0, len(x) - 1, num=min(len(x), _MAX_FIT_ROWS)).astype(np.int64))
    gmm.fit(x[fit_rows])
    return gmm.score_samples(x)


def knn_log_density(x: np.ndarray, k: int) -> np.ndarray:
    """Log of the k-nearest-neighbour density of each row of x [n, d], up to a constant: -d log r_k."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(x) - 1))
    # k + 1 neighbours: the nearest one of a row is the row itself.
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    r = np.maximum(distances[:, -1], 1e-12)
    return -x.shape[1] * np.log(r)


def relative_log_weights(log_density: np.ndarray, alpha: float) -> np.ndarray:
    """-log(p / median p + alpha), computed in log space."""
    rel = log_density - np.median(log_density)
    if alpha <= 0:
        return -rel
    return -np.logaddexp(rel, math.log(alpha))


def per_class(values: np.ndarray, labels: np.ndarray, score) -> np.ndarray:
    """Apply `score(rows of values) -> log-weights` to each class separately (a class with fewer than
    3 rows stays uniform). How much weight each class gets is left to `--keep-class-shares`."""
    out = np.zeros(len(labels), dtype=np.float64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 3:
            continue  # too few to estimate a density: uniform within the class
        out[rows] = score(values[rows])
    return out


def joint_log_weights(
    mu: torch.Tensor,
    labels: torch.Tensor,
    dims: int = 4,
    method: str = "gmm",
    components: int = 8,
    knn_k: int = 20,
    alpha: float = 0.1,
) -> torch.Tensor:
    """Log-weights [N] (float64) from the per-class joint density of latent means mu [N, D]; larger = rarer."""
    x = mu.detach().double().cpu().numpy()
    y = labels.detach().cpu().numpy().reshape(-1)

    def score(rows: np.ndarray) -> np.ndarray:
        z = principal_projection(rows, dims)
        log_p = gmm_log_density(z, components) if method == "gmm" else knn_log_density(z, knn_k)
        return relative_log_weights(log_p, alpha)

    return torch.from_numpy(per_class(x, y, score)).to(mu.device)


def joint_options(settings: WeightingSettings) -> dict:
    """The keyword arguments of `joint_log_weights` from the settings."""
    return dict(
        dims=settings.joint_dims,
        method=settings.joint_method,
        components=settings.joint_components,
        knn_k=settings.knn_k,
        alpha=settings.joint_alpha,
    )


def joint_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `joint` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return joint_log_weights(inputs.latents, inputs.labels, **joint_options(settings))
