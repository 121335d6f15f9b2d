import math

import numpy as np
import pytest
import torch

from debias.weighting import (
    WeightingSettings,
    cap_weights,
    effective_sample_size,
    histogram_log_weights,
    max_min_ratio,
    normalize_log_weights,
    training_weights,
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
    # weights proportional to 1/0.8 and 1/0.2 = 1.25 and 5 (mean 2), so 0.625 and 2.5 at mean 1
    np.testing.assert_allclose(w.numpy(), [0.625] * 4 + [2.5])
    assert w.mean().item() == pytest.approx(1.0)


def test_hand_computed_weights_with_alpha_two_dimensions():
    mu = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    # dim 0: Q = [0.75, 0.25]; dim 1: Q = [0.25, 0.75]. With alpha = 0.1 the smoothed Q^ is
    # (0.85, 0.35) / 1.2 or its mirror, so a common value scores a = ln(1.2 / 0.85), a rare one
    # b = ln(1.2 / 0.35). Rows: (common, rare), (common, common), (rare, common), (common, common).
    a, b = math.log(1.2 / 0.85), math.log(1.2 / 0.35)
    for combine, expected in [
        ("product", [a + b, 2 * a, a + b, 2 * a]),
        ("geometric", [(a + b) / 2, a, (a + b) / 2, a]),
        ("max", [b, a, b, a]),
    ]:
        got = histogram_log_weights(mu, bins=2, alpha=0.1, combine=combine).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_log_space_product_equals_direct_product_and_stays_finite_at_100_dims():
    # 3 dimensions, alpha = 0: dim 0 has Q = (3/4, 1/4), dim 1 (2/4, 2/4), dim 2 (1/4, 3/4).
    # Direct products of 1 / Q: row 0 gets (4/3)(2)(4) = 32/3, row 3 (4)(2)(4/3) = 32/3, rows 1
    # and 2 (4/3)(2)(4/3) = 32/9; at mean 1 that is 1.5, 0.5, 0.5, 1.5.
    mu = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    log_w = histogram_log_weights(mu, bins=2, alpha=0.0, combine="product")
    np.testing.assert_allclose(log_w.numpy(), np.log([32 / 3, 32 / 9, 32 / 9, 32 / 3]), rtol=1e-12)
    np.testing.assert_allclose(normalize_log_weights(log_w).numpy(), [1.5, 0.5, 0.5, 1.5], rtol=1e-12)

    g = torch.Generator().manual_seed(0)
    mu100 = torch.randn(2000, 100, generator=g)
    w = normalize_log_weights(histogram_log_weights(mu100, bins=10, alpha=0.001, combine="product"))
    assert torch.isfinite(w).all() and (w > 0).all()
    # One row at 1 in all 100 dimensions among 999 at 0: its direct product is 1000**100 = 1e300,
    # past float32 (3.4e38), the others' (1000/999)**100. Log space keeps the exact ratio,
    # 100 ln 999, and the normalized weights finite and positive.
    rare = torch.zeros(1000, 100)
    rare[0] = 1.0
    log_w = histogram_log_weights(rare, bins=2, alpha=0.0, combine="product")
    assert (log_w[0] - log_w[1]).item() == pytest.approx(100 * math.log(999), rel=1e-12)
    w = normalize_log_weights(log_w)
    assert torch.isfinite(w).all() and (w > 0).all()
    assert w[0].item() == pytest.approx(1000.0) and torch.all(w[1:] == w[1])


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
    weights, _ = training_weights(mu, labels, WeightingSettings(strategy="histogram"), vae_on_all=True)
    assert effective_sample_size(weights) > ESS_FLOOR
    product, _ = training_weights(
        mu, labels, WeightingSettings(strategy="histogram", combine="product", alpha=0.001), vae_on_all=True
    )
    # the paper's raw product at 100 dimensions concentrates weight on a few samples
    assert effective_sample_size(product) < 0.05


def test_rarer_latent_values_get_larger_weights():
    mu = _realistic_latents()
    weights, _ = training_weights(mu, torch.ones(len(mu)), WeightingSettings(strategy="histogram"), vae_on_all=True)
    rare = weights[: len(mu) // 50].mean()
    common = weights[len(mu) // 50 :].mean()
    assert rare > 1.5 * common


def test_large_alpha_gives_near_uniform_weights():
    mu = _realistic_latents()
    for combine in ("product", "geometric", "max"):
        w, _ = training_weights(
            mu,
            torch.ones(len(mu)),
            WeightingSettings(strategy="histogram", alpha=1e6, combine=combine),
            vae_on_all=True,
        )
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


def test_effective_sample_size_and_max_min_ratio_by_hand():
    ess = lambda w: effective_sample_size(torch.tensor(w, dtype=torch.float64))  # noqa: E731
    assert ess([1.0, 1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert ess([3.0, 3.0, 3.0, 3.0]) == pytest.approx(1.0)  # the scale does not matter
    assert ess([2.0, 2.0, 0.0, 0.0]) == pytest.approx(0.5)  # half the rows carry everything
    assert ess([4.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)  # one row of four: 1 / N
    assert ess([3.0, 1.0]) == pytest.approx(16 / 20)  # (3 + 1)^2 / (2 * (9 + 1))
    assert max_min_ratio(torch.tensor([0.5, 1.0, 2.0])) == pytest.approx(4.0)
    assert max_min_ratio(torch.tensor([0.0, 1.0])) == math.inf


def test_detection_mode_scores_positives_only_and_keeps_class_balance():
    mu = _realistic_latents(n=1000)
    labels = torch.tensor([1] * 600 + [0] * 400)
    weights, score = training_weights(mu, labels, WeightingSettings(strategy="histogram"), vae_on_all=False)
    assert torch.all(weights[600:] == 1.0)
    assert weights[:600].mean().item() == pytest.approx(1.0)
    assert torch.isnan(score[600:]).all() and torch.isfinite(score[:600]).all()


def test_invalid_settings_are_rejected():
    mu = _realistic_latents(n=100, d=4)
    ones = torch.ones(100)
    for bad in [
        WeightingSettings(strategy="histogram", bins=1),
        WeightingSettings(strategy="histogram", alpha=-0.1),
        WeightingSettings(strategy="histogram", combine="sum"),
        WeightingSettings(strategy="histogram", cap=0.5),
    ]:
        with pytest.raises(ValueError):
            training_weights(mu, ones, bad, vae_on_all=True)
    # alpha = 0 is valid: the paper's uniform-over-latent-space limit
    w, _ = training_weights(mu, ones, WeightingSettings(strategy="histogram", alpha=0.0), vae_on_all=True)
    assert torch.isfinite(w).all()
