"""Latent health: whether the DB-VAE learned its faces, measured in every fit.

A collapsed VAE (every face decoded to one average face) makes every density over its latents
meaningless, so the fit measures, per epoch on part of the validation split and at the end on
the test split:

    kl_nats               information the encoder stores per image: the KL of q(z|x) from the
                          prior, in nats, summed over latent dimensions (mean over images)
    active_dims           dimensions whose mean KL exceeds 0.01 nats (Burda et al.'s activity
                          test uses the variance of mu; the KL counts the same dimensions here)
    reconstruction_ratio  mean L1 error of decoder(mu) over that of predicting the mean training
                          image for every image: 1.0 means the decoder learned nothing beyond
                          the average face
    probe                 (end only, where the data has group attributes) balanced accuracy of a
                          cross-validated linear probe of mu for each group attribute: whether
                          the latents can tell the people a fairness report is about apart

Evaluation only: nothing here feeds training or the weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from debias.models import reconstruction_error, to_model_input
from debias.train import autocast, evaluation_mode, iterate_batches

# A dimension carries information when its mean KL from the prior exceeds this many nats.
ACTIVE_KL = 0.01
# Collapse thresholds, measured (BENCHMARKS.md, "Latent health"): collapsed fits decoded at 0.80x
# (synthfaces, beta 0.01) and 1.14x (CelebA sample) the error of the mean image and stored 0.1-1.4
# nats per image; every fit whose weights found a rare group decoded below 0.7x with 10+ nats.
COLLAPSED_RATIO = 0.85
COLLAPSED_NATS = 2.0
# Rows of the validation split measured after every epoch (the test split is measured in full at the end).
EPOCH_ROWS = 1024
# A probe needs a few examples of each value to be cross-validated.
_MIN_PER_CLASS = 5
_FOLDS = 3


def vae_rows(split, vae_on_all: bool) -> np.ndarray:
    """The rows of `split` the VAE models: all of them, or the positives (faces) in face detection."""
    return np.arange(len(split)) if vae_on_all else np.flatnonzero(split.labels == 1)


def mean_image(images: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> torch.Tensor:
    """The mean of uint8 images[rows] ([N, H, W, 3]) as a model input [3, H, W] in [0, 1] (exact integer sums, chunked).

    Summing the uint8 chunk straight into int64 makes no float copy of it (400 MB for 4,096 64x64 images).
    """
    total = np.zeros(images.shape[1:], dtype=np.int64)
    for start in range(0, len(rows), chunk):
        total += images[np.sort(rows[start : start + chunk])].sum(axis=0, dtype=np.int64)
    mean = torch.from_numpy(total.astype(np.float64) / max(len(rows), 1) / 255.0).float()
    return mean.permute(2, 0, 1)


def reconstruction_stats(
    model, images: np.ndarray, mean: torch.Tensor, batch_size: int, device: torch.device, amp: bool = False
) -> dict:
    """kl_nats, active_dims, reconstruction_error, mean_image_error and their ratio over `images`; also mu [N, k]."""
    dummy = np.zeros(len(images), dtype=np.int64)
    kl_sum, recon_sum, base_sum, mus = None, 0.0, 0.0, []
    mean = mean.to(device)
    with evaluation_mode(model), torch.inference_mode():
        for x_uint8, _ in iterate_batches(images, dummy, np.arange(len(images)), batch_size, device):
            x = to_model_input(x_uint8)
            with autocast(device, amp):
                _, mu, logvar = model.encode(x)
                x_hat = model.decoder(mu)
            mu, logvar = mu.float(), logvar.float()
            per_dim = 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar)  # kl_divergence before its sum
            kl_sum = per_dim.sum(0) if kl_sum is None else kl_sum + per_dim.sum(0)
            recon_sum += float(reconstruction_error(x.float(), x_hat.float()).sum())
            base_sum += float(reconstruction_error(x.float(), mean.expand_as(x)).sum())
            mus.append(mu.cpu())
    n = max(len(images), 1)
    kl_per_dim = (kl_sum / n).double().cpu()
    return {
        "kl_nats": float(kl_per_dim.sum()),
        "active_dims": int((kl_per_dim > ACTIVE_KL).sum()),
        "latent_dim": int(len(kl_per_dim)),
        "reconstruction_error": recon_sum / n,
        "mean_image_error": base_sum / n,
        "reconstruction_ratio": recon_sum / base_sum if base_sum > 0 else float("nan"),
        "mu": torch.cat(mus).numpy(),
    }


def probe_targets(attributes: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """name -> 0/1 target for each group attribute: binary columns as they are, others one value against the rest."""
    targets = {}
    for column in columns:
        values = attributes[column].astype(str).to_numpy()
        kinds = sorted(set(values))
        if len(kinds) == 2:
            targets[column] = (values == kinds[1]).astype(np.int64)
        elif len(kinds) > 2:
            for kind in kinds:
                targets[f"{column}={kind}"] = (values == kind).astype(np.int64)
    return targets


def linear_probe(mu: np.ndarray, targets: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """Cross-validated balanced accuracy of a logistic regression on standardized mu, per target (skips thin ones)."""
    scores = {}
    for name, y in targets.items():
        if np.bincount(y, minlength=2).min() < _MIN_PER_CLASS * _FOLDS:
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
        folds = StratifiedKFold(_FOLDS, shuffle=True, random_state=seed)
        predicted = cross_val_predict(probe, mu, y, cv=folds)
        scores[name] = float(balanced_accuracy_score(y, predicted))
    return scores


def is_collapsed(stats: dict) -> bool:
    """Whether the decoder has learned little beyond the mean image, or the encoder stores almost nothing."""
    return bool(stats["reconstruction_ratio"] >= COLLAPSED_RATIO or stats["kl_nats"] < COLLAPSED_NATS)


def advice(stats: dict, beta: float, epochs: int, warmup_steps: int, reads_latents: bool = True) -> str | None:
    """What to try when the VAE collapsed (None when it did not); the warning itself states the numbers.

    `reads_latents`: whether the fit's weighting reads the latents (else weights.csv does not suffer from it).
    """
    if not is_collapsed(stats):
        return None
    tip = f"Try a lower --beta (now {beta:g}), a longer --vae-warmup-steps (now {warmup_steps}) or more --epochs (now {epochs})"
    if reads_latents:
        return f"{tip}, or a weighting that does not read the latents (--weighting errors)."
    return f"{tip}. This fit's weighting does not read the latents, so weights.csv does not depend on them."


def latent_health(
    model,
    split,
    mean: torch.Tensor,
    vae_on_all: bool,
    group_columns: list[str],
    batch_size: int,
    device: torch.device,
    amp: bool = False,
    limit: int | None = None,
    probe: bool = True,
) -> dict:
    """The latent-health record of `model` on the rows of `split` the VAE models (the first `limit` of them), JSON-ready.

    `mean`: the mean of the VAE's training images (`mean_image`), the reconstruction baseline.
    """
    rows = vae_rows(split, vae_on_all)[:limit]
    stats = reconstruction_stats(model, split.images[rows], mean, batch_size, device, amp)
    mu = stats.pop("mu")
    if probe and group_columns:
        attributes = split.attributes.iloc[rows].reset_index(drop=True)
        stats["probe"] = linear_probe(mu, probe_targets(attributes, group_columns))
    elif probe:
        stats["probe"] = {}
    stats["collapsed"] = is_collapsed(stats)
    return stats


__all__ = [
    "ACTIVE_KL",
    "COLLAPSED_NATS",
    "COLLAPSED_RATIO",
    "advice",
    "is_collapsed",
    "latent_health",
    "linear_probe",
    "mean_image",
    "probe_targets",
    "reconstruction_stats",
    "vae_rows",
]
