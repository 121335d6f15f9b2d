import math

import numpy as np
import pytest
import torch

from debias.weighting import (
    WeightingSettings, cap_weights, effective_sample_size, histogram_log_weights, max_min_ratio,
    normalize_log_weights, training_weights,
)
from debias.weighting.histogram import histogram_counts


def test_hand_computed_weights_one_dimension():
    # 4 samples at 0, 1 sample at 1, bins=2 -> counts [4, 1]; Q = [0.8, 0.2]; alpha = 0
    mu = torch.tensor([[0.0], [0.0], [0.0], [0.0], [1.0]])
    counts, low, width = histogram_counts(mu, bins=2)
    assert counts.tolist() == [[4.0, 1.0]]
    log_w = histogram_log_weights(mu, bins=2, alpha=0.0, combine="product")
    assert torch.allclose(log_w, torch.tensor([-math.log(0.8)] * 4 + [-math.log(0.2)], dtype=torch.float64))
    w = normalize_log_weights(log_w)
    # weights proportional to 1/0.8 and 1/0.2 = 1.25 and 5, normalized to mean 1
    expected = np.array([1.25] * 4 + [5.0])
    np.testing.assert_allclose(w.numpy(), expected / expected.mean())
    assert w.mean().item() == pytest.approx(1.0)


def test_hand_computed_weights_with_alpha_two_dimensions():
    mu = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    alpha = 0.1
    # dim 0: Q = [0.75, 0.25]; dim 1: Q = [0.25, 0.75]; smoothed then renormalized per dimension
    q0 = np.array([0.75 + alpha, 0.25 + alpha]) / (1 + 2 * alpha)
    q1 = np.array([0.25 + alpha, 0.75 + alpha]) / (1 + 2 * alpha)
    bins0, bins1 = [0, 0, 1, 0], [0, 1, 1, 1]
    per_dim = np.stack([-np.log(q0[bins0]), -np.log(q1[bins1])], axis=1)
    for combine, reduce in [("product", per_dim.sum(1)), ("geometric", per_dim.mean(1)), ("max", per_dim.max(1))]:
        got = histogram_log_weights(mu, bins=2, alpha=alpha, combine=combine).numpy()
        np.testing.assert_allclose(got, reduce, rtol=1e-12)


def test_log_space_product_equals_direct_product_and_stays_finite_at_100_dims():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 5, generator=g)
    log_w = histogram_log_weights(mu, bins=8, alpha=0.01, combine="product")
    # direct product of 1/Q^ per dimension, feasible at 5 dimensions
    counts, low, width = histogram_counts(mu, bins=8)
    q = counts / 500 + 0.01
    q = q / q.sum(1, keepdim=True)
    idx = ((mu - low) / width).floor().long().clamp(0, 7)
    direct = torch.ones(500, dtype=torch.float64)
    for d in range(5):
        direct *= 1.0 / q[d, idx[:, d]]
    np.testing.assert_allclose(normalize_log_weights(log_w).numpy(), (direct / direct.mean()).numpy(), rtol=1e-9)

    mu100 = torch.randn(2000, 100, generator=g)
    w = normalize_log_weights(histogram_log_weights(mu100, bins=10, alpha=0.001, combine="product"))
    assert torch.isfinite(w).all() and (w > 0).all()
    # the direct float32 product underflows or overflows at 100 dimensions: that is why we use logs
    counts, low, width = histogram_counts(mu100, bins=10)
    q = (counts / 2000 + 0.001).float()
    idx = ((mu100 - low) / width).floor().long().clamp(0, 9)
    direct = torch.ones(2000)
    for d in range(100):
        direct *= 1.0 / q[d, idx[:, d]]
    assert not torch.isfinite(direct).all()


def _realistic_latents(n=4000, d=100, seed=0):
    """Latent means like a trained encoder's: correlated Gaussian dims, a heavy-tailed few, a rare cluster."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 8, generator=g)
    mix = torch.randn(8, d, generator=g) / 3
    mu = base @ mix + 0.5 * torch.randn(n, d, generator=g)
    mu[:, :5] = mu[:, :5] ** 3  # some heavy-tailed dimensions
    # a rare 2% cluster, displaced along a direction that spreads over many dimensions, as a
    # latent factor of a trained encoder does
    direction = torch.randn(d, generator=g)
    mu[: n // 50] += 2.5 * direction
    return mu


ESS_FLOOR = 0.3


def test_default_combination_keeps_ess_above_floor_and_product_does_not():
    mu = _realistic_latents()
    labels = torch.ones(len(mu), dtype=torch.long)
    weights, _ = training_weights(mu, labels, WeightingSettings(), vae_on_all=True)
    assert effective_sample_size(weights) > ESS_FLOOR
    product, _ = training_weights(mu, labels, WeightingSettings(combine="product", alpha=0.001), vae_on_all=True)
    # the paper's raw product at 100 dimensions concentrates weight on a few samples
    assert effective_sample_size(product) < 0.05


def test_rarer_latent_values_get_larger_weights():
    mu = _realistic_latents()
    weights, _ = training_weights(mu, torch.ones(len(mu)), WeightingSettings(), vae_on_all=True)
    rare = weights[: len(mu) // 50].mean()
    common = weights[len(mu) // 50 :].mean()
    assert rare > 1.5 * common


def test_large_alpha_gives_near_uniform_weights():
    mu = _realistic_latents()
    for combine in ("product", "geometric", "max"):
        w, _ = training_weights(mu, torch.ones(len(mu)), WeightingSettings(alpha=1e6, combine=combine), vae_on_all=True)
        assert max_min_ratio(w) < 1.001
        assert effective_sample_size(w) > 0.9999


def test_max_keeps_only_the_rarest_dimension():
    # sample 0 is very rare in dimension 0 only; samples 1..30 are mildly rare in the 19 others.
    # max ranks sample 0 first, the product ranks sample 1 first.
    mu = torch.zeros(100, 20)
    mu[0, 0] = 1.0
    mu[1:31, 1:] = 1.0
    w_max = normalize_log_weights(histogram_log_weights(mu, bins=2, alpha=0.0, combine="max"))
    w_prod = normalize_log_weights(histogram_log_weights(mu, bins=2, alpha=0.0, combine="product"))
    assert w_max[0] > w_max[1]
    assert w_prod[1] > w_prod[0]


def test_cap_limits_largest_weight_and_keeps_mean_one():
    w = torch.tensor([100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    w = w / w.mean()
    capped = cap_weights(w, 3.0)
    assert capped.max().item() <= 3.0 * (1 + 1e-6)
    assert capped.mean().item() == pytest.approx(1.0)
    assert effective_sample_size(capped) > effective_sample_size(w)
    # order is preserved
    assert capped[0] == capped.max()


def test_detection_mode_scores_positives_only_and_keeps_class_balance():
    mu = _realistic_latents(n=1000)
    labels = torch.tensor([1] * 600 + [0] * 400)
    weights, score = training_weights(mu, labels, WeightingSettings(), vae_on_all=False)
    assert torch.all(weights[600:] == 1.0)
    assert weights[:600].mean().item() == pytest.approx(1.0)
    assert torch.isnan(score[600:]).all() and torch.isfinite(score[:600]).all()


def test_invalid_settings_are_rejected():
    mu = _realistic_latents(n=100, d=4)
    ones = torch.ones(100)
    for bad in [WeightingSettings(bins=1), WeightingSettings(alpha=-0.1), WeightingSettings(combine="sum"), WeightingSettings(cap=0.5)]:
        with pytest.raises(ValueError):
            training_weights(mu, ones, bad, vae_on_all=True)
    # alpha = 0 is valid: the paper's uniform-over-latent-space limit
    w, _ = training_weights(mu, ones, WeightingSettings(alpha=0.0), vae_on_all=True)
    assert torch.isfinite(w).all()
