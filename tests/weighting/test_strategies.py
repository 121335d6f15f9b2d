"""Weighting strategies on a hand-built latent matrix whose rare groups are combinations of common values."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from debias.weighting import (
    STRATEGIES,
    WeightingInputs,
    WeightingSettings,
    compute_weights,
    effective_sample_size,
    needs_errors,
    needs_groups,
    training_weights,
    validate,
    weight_summary,
)
from debias.weighting.errors import early_error_rates

N = 2000
RARE_RATE = 0.05  # of each class: the label disagrees with trait B


def rare_combination(seed=0, n=N):
    """Latents [n, 4] (trait A, trait B, two nuisance dims), labels = A, rare-cell mask, early classifier P(label = 1).

    Each trait is +-1 in half the rows, so every per-dimension histogram is flat; only the
    combination A != B is rare (5%). The early classifier predicts from B (the shortcut): it gets
    the rare cells wrong, except a fifth of them, and also gets 3% of the common rows wrong.
    """
    g = np.random.default_rng(seed)
    a = np.repeat([1, 0], n // 2)
    b = a.copy()
    rare = np.zeros(n, dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(a == label)
        flip = g.choice(rows, size=int(RARE_RATE * len(rows)), replace=False)
        b[flip] = 1 - label
        rare[flip] = True
    mu = np.stack([2 * a - 1, 2 * b - 1, np.zeros(n), np.zeros(n)], axis=1) + 0.15 * g.standard_normal((n, 4))
    mu[:, 2:] = g.standard_normal((n, 2))
    wrong = rare & (g.random(n) > 0.2) | ~rare & (g.random(n) < 0.03)
    p_label1 = np.where(wrong, 1 - a, a) * 0.8 + 0.1  # 0.9 when predicting 1, 0.1 when predicting 0
    return (
        torch.tensor(mu, dtype=torch.float32),
        torch.tensor(a),
        torch.tensor(rare),
        torch.tensor(p_label1),
        torch.tensor(wrong),
    )


def trait_b_groups(mu):
    """The true group of each row: its trait B (the second latent's sign), as the group strategies read it."""
    return np.where(mu[:, 1].numpy() > 0, "B=1", "B=0")


def _weights(strategy, cap=None, **options):
    mu, labels, _, probs, _ = rare_combination()
    settings = WeightingSettings(strategy=strategy, cap=cap, **options)
    weights, score = training_weights(
        mu, labels, settings, vae_on_all=True, early_probs=probs, groups=trait_b_groups(mu)
    )
    return weights, score


UPWEIGHTING = ["joint", "errors", "errors+joint", "errors+latent", "groups", "balanced-groups"]


@pytest.mark.parametrize("strategy,options", [(s, {}) for s in UPWEIGHTING] + [("joint", {"joint_method": "knn"})])
def test_strategy_upweights_the_rare_combination(strategy, options):
    _, _, rare, _, _ = rare_combination()
    weights, score = _weights(strategy, **options)
    assert weights.mean().item() == pytest.approx(1.0)
    assert torch.isfinite(score).all()
    ratio = weights[rare].mean() / weights[~rare].mean()
    assert ratio > 3, f"{strategy}: rare cells get {ratio:.2f}x the common ones"


def test_histogram_does_not_see_the_rare_combination():
    # Recorded failure: each trait is common on its own, so per-dimension histograms give the rare
    # combination ordinary weights (this is why the other strategies exist).
    _, _, rare, _, _ = rare_combination()
    for combine in ("max", "geometric", "product"):
        weights, _ = _weights("histogram", combine=combine)
        ratio = (weights[rare].mean() / weights[~rare].mean()).item()
        assert ratio < 1.3, (combine, ratio)


def test_errors_is_jtt_lambda_for_errors_and_one_otherwise():
    _, _, _, _, wrong = rare_combination()
    weights, _ = _weights("errors", errors_upweight=7.0, keep_class_shares=False)
    assert torch.allclose(weights[wrong], weights[wrong][0].expand(int(wrong.sum())))
    assert (weights[wrong][0] / weights[~wrong][0]).item() == pytest.approx(7.0)
    assert torch.allclose(weights[~wrong], weights[~wrong][0].expand(int((~wrong).sum())))
    assert weights.mean().item() == pytest.approx(1.0)
    # by hand: rows 1 and 3 are errors (P(label = 1) 0.2 for a 1, 0.6 for a 0); raw 1, 7, 1, 7 has mean 4
    inputs = WeightingInputs.from_early_probs(
        torch.zeros(4, 2), torch.tensor([1, 1, 0, 0]), np.array([0.9, 0.2, 0.3, 0.6])
    )
    tiny, _ = compute_weights(inputs, WeightingSettings(strategy="errors", errors_upweight=7.0), vae_on_all=True)
    assert tiny.tolist() == pytest.approx([0.25, 1.75, 0.25, 1.75])


@pytest.mark.parametrize("strategy", ["histogram", "errors", "errors+latent"])
def test_keep_class_shares_moves_weight_within_each_class_only(strategy):
    _, labels, rare, _, _ = rare_combination()
    # a class imbalance for the shares to keep: drop most of class 1's common rows
    keep = (labels == 0) | rare | (torch.arange(N) % 4 == 0)
    mu, labels, rare, probs, _ = (t[keep] for t in rare_combination())
    settings = WeightingSettings(strategy=strategy, keep_class_shares=True)
    weights, _ = training_weights(mu, labels, settings, vae_on_all=True, early_probs=probs)
    free, _ = training_weights(mu, labels, replace(settings, keep_class_shares=False), True, early_probs=probs)
    for label in (0, 1):
        rows = labels == label
        assert weights[rows].sum().item() == pytest.approx(rows.sum().item(), rel=1e-9)
        # within a class the weights are the free ones rescaled: the same ranking, the same ratios
        assert torch.allclose(weights[rows] / weights[rows][0], free[rows] / free[rows][0])
    if strategy != "histogram":
        assert weights[rare].mean() / weights[~rare].mean() > 3
    assert not torch.allclose(weights, free)


def test_errors_latent_smooths_errors_along_the_latent():
    # The rare rows the early classifier happened to get right still sit where errors
    # concentrate; the common rows it got wrong do not. JTT treats both by the raw indicator.
    _, _, rare, _, wrong = rare_combination()
    jtt, _ = _weights("errors")
    smooth, _ = _weights("errors+latent")
    missed, noise = rare & ~wrong, ~rare & wrong
    assert smooth[missed].mean() > 3 * smooth[~rare & ~wrong].mean()
    assert smooth[missed].mean() / smooth.mean() > jtt[missed].mean() / jtt.mean()
    assert smooth[noise].mean() < jtt[noise].mean()


def test_joint_density_keeps_each_class_mass():
    _, labels, _, _, _ = rare_combination()
    weights, _ = _weights("joint")
    for label in (0, 1):
        rows = labels == label
        assert weights[rows].sum().item() == pytest.approx(rows.sum().item(), rel=1e-9)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_honours_the_cap_and_reports_ess(strategy):
    weights, _ = _weights(strategy, cap=2.0)
    assert weights.max().item() <= 2.0 * (1 + 1e-6)
    assert weights.mean().item() == pytest.approx(1.0)
    assert (weights > 0).all()
    summary = weight_summary(weights)
    assert set(summary) >= {"ess", "max_min_ratio", "max_weight", "min_weight"}
    assert 0 < summary["ess"] <= 1 + 1e-12
    assert summary["max_min_ratio"] >= 1
    uncapped, _ = _weights(strategy)
    # The cap only ever evens the weights out.
    assert effective_sample_size(weights) >= effective_sample_size(uncapped) - 1e-9


def test_uniform_strategy_is_all_ones():
    weights, _ = _weights("uniform")
    assert torch.equal(weights, torch.ones_like(weights))
    assert effective_sample_size(weights) == pytest.approx(1.0)


def test_detection_mode_scores_positives_only_for_every_latent_strategy():
    mu, labels, _, probs, _ = rare_combination()
    for strategy in STRATEGIES:
        weights, score = training_weights(
            mu,
            labels,
            WeightingSettings(strategy=strategy),
            vae_on_all=False,
            early_probs=probs,
            groups=trait_b_groups(mu),
        )
        if STRATEGIES[strategy].scores_every_row:
            # label-based: balancing the classes is their point, so negatives are scored too
            assert torch.isfinite(score).all() and weights.mean().item() == pytest.approx(1.0), strategy
            continue
        assert torch.all(weights[labels == 0] == 1.0), strategy
        assert weights[labels == 1].mean().item() == pytest.approx(1.0)
        assert torch.isnan(score[labels == 0]).all()


def test_only_the_group_strategies_need_group_labels():
    mu, labels, _, probs, _ = rare_combination()
    assert sorted(s for s in STRATEGIES if needs_groups(s)) == ["balanced-groups", "groups"]
    for strategy in ("groups", "balanced-groups"):
        with pytest.raises(ValueError, match="group"):
            training_weights(mu, labels, WeightingSettings(strategy=strategy), vae_on_all=True, early_probs=probs)


def test_errors_strategies_need_the_early_predictions():
    mu, labels, _, _, _ = rare_combination()
    for strategy in STRATEGIES:
        assert needs_errors(strategy) == strategy.startswith("errors")
        if needs_errors(strategy):
            with pytest.raises(ValueError, match="errors"):
                training_weights(mu, labels, WeightingSettings(strategy=strategy), vae_on_all=True)


def test_inputs_from_early_probs():
    labels = torch.tensor([1, 1, 0, 0])
    inputs = WeightingInputs.from_early_probs(torch.zeros(4, 2), labels, np.array([0.9, 0.2, 0.3, 0.6]))
    assert inputs.errors.tolist() == [False, True, False, True]
    expected = [-math.log(0.9), -math.log(0.2), -math.log(0.7), -math.log(0.4)]
    assert inputs.losses.tolist() == pytest.approx(expected)
    assert inputs.rows(labels == 1).errors.tolist() == [False, True]
    with pytest.raises(ValueError, match="rows"):
        WeightingInputs.from_early_probs(torch.zeros(4, 2), labels, np.array([0.5, 0.5]))


def test_strategies_are_deterministic():
    for strategy in STRATEGIES:
        first, _ = _weights(strategy)
        again, _ = _weights(strategy)
        assert torch.equal(first, again), strategy


def test_small_classes_do_not_break_the_joint_density():
    mu = torch.randn(12, 6)
    labels = torch.tensor([1] * 10 + [0] * 2)
    weights, _ = compute_weights(WeightingInputs(mu, labels), WeightingSettings(strategy="joint"), vae_on_all=True)
    assert torch.isfinite(weights).all() and weights.mean().item() == pytest.approx(1.0)
    assert torch.all(weights[10:] == weights[10])  # a class of 2 stays uniform within itself


@pytest.mark.parametrize(
    "bad",
    [
        dict(strategy="nope"),
        dict(strategy="auto"),
        dict(errors_upweight=0.5),
        dict(errors_epoch=0),
        dict(joint_method="kde"),
        dict(joint_dims=0),
        dict(joint_components=0),
        dict(knn_k=0),
        dict(joint_alpha=-1.0),
    ],
)
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        validate(WeightingSettings(**bad))


def test_auto_is_valid_only_where_allowed():
    validate(WeightingSettings(strategy="auto"), allow_auto=True)
    mu, labels, _, probs, _ = rare_combination()
    with pytest.raises(ValueError, match="auto"):
        training_weights(mu, labels, replace(WeightingSettings(), strategy="auto"), vae_on_all=True, early_probs=probs)


def test_early_error_rates_compare_with_the_majority_class():
    labels = np.array([0] * 8 + [1] * 2)
    # Right on all but one majority row: errs less than always predicting 0 (2 of 10 wrong).
    good = np.where(labels == 1, 0.9, 0.1)
    good[0] = 0.8
    rates = early_error_rates(good, labels)
    assert rates == {"error_rate": pytest.approx(0.1), "majority_error_rate": pytest.approx(0.2), "informative": True}
    # Calls half the majority class positive: its errors are a whole class's worth, not a minority.
    rates = early_error_rates(np.where(np.arange(10) % 2 == 0, 0.7, 0.1), labels)
    assert rates["error_rate"] == pytest.approx(0.5) and not rates["informative"]
    # Equal to the constant prediction is not better than it.
    assert not early_error_rates(np.full(10, 0.2), labels)["informative"]
