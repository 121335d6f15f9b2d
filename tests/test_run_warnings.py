"""The warnings the fit's summary prints and the report shows first, on hand-made config dicts."""

import pytest

from debias.run_warnings import constant_predictors, latent_health_lines, run_warnings, underweighted_cells

COLLAPSED = {
    "kl_nats": 1.4,
    "active_dims": 3,
    "latent_dim": 100,
    "reconstruction_error": 0.098,
    "mean_image_error": 0.1,
    "reconstruction_ratio": 0.98,
    "probe": {"Male": 0.52},
    "collapsed": True,
    "advice": "Lower --beta to 0.0005 and fit again.",
}


def test_constant_predictors_are_the_models_with_selection_rate_0_or_1():
    assert constant_predictors({"uniform": 0.0, "dbvae": 1.0, "oracle": 0.5, "old": None}) == {"uniform": 0, "dbvae": 1}


def test_a_rare_cell_under_1x_is_warned_about_and_a_common_one_is_not():
    cells = {
        "Male=0|label=0": {"rows": 430, "mean_weight": 0.93},  # common and under 1x: expected, not warned
        "Male=1|label=0": {"rows": 420, "mean_weight": 1.02},
        "Male=0|label=1": {"rows": 141, "mean_weight": 1.6},  # rare and over 1x
        "Male=1|label=1": {"rows": 9, "mean_weight": 0.41},  # rare (0.9% < 25%) and under 1x
    }
    assert underweighted_cells(cells) == [("Male=1|label=1", pytest.approx(0.009), 0.41)]
    # uniform weights: exactly 1, no warning
    assert underweighted_cells({"a": {"rows": 1, "mean_weight": 1.0}, "b": {"rows": 99, "mean_weight": 1.0}}) == []


def test_every_warning_with_its_numbers():
    config = {
        "final_weights": {"ess": 0.04},
        "latent_health": COLLAPSED,
        "group_weights": {"a": {"rows": 98, "mean_weight": 1.01}, "b": {"rows": 2, "mean_weight": 0.5}},
    }
    warnings = run_warnings(config, {"uniform": 0.0, "dbvae": 0.0, "oracle": 0.4})
    assert warnings == [
        "uniform and dbvae predict class 0 for every test image: constant predictors, whose accuracies count the "
        "test images of that class and whose group comparisons mean nothing. Train longer (--epochs) or check the "
        "learning rate (--lr).",
        "The DB-VAE's latent space collapsed (1.4 nats per image, 3 of 100 dimensions active, reconstructions at "
        "0.98x the mean image's error): nothing built on its latents can tell the images apart. Lower --beta to "
        "0.0005 and fit again.",
        "weights.csv's effective sample size is 4.0% of the training rows (under 10%): a few images carry most of "
        "the draws, so training by these weights sees little of the data. Cap the weights (--cap) or recompute "
        "them with `debias weights RUN`.",
        "The group cell b is 2.0% of the training rows but gets 0.50x the mean weight: weights.csv draws it less "
        "often than uniform sampling would, though a rare cell is the one that needs the weights.",
    ]


def test_a_healthy_run_and_an_old_run_have_no_warnings():
    healthy = {**COLLAPSED, "collapsed": False, "advice": None}
    assert run_warnings({"final_weights": {"ess": 0.75}, "latent_health": healthy}, {"uniform": 0.5}) == []
    assert run_warnings({}) == []


def test_latent_health_lines():
    assert latent_health_lines(None) == []
    assert latent_health_lines(COLLAPSED) == [
        "latent health: KL 1.4 nats per image, 3 of 100 dimensions active, reconstruction error 0.98x the mean "
        "image's (collapsed)",
        "linear probe of the latent means (balanced accuracy): Male 0.52",
    ]


def _check(weighted, uniform, p, loses):
    figure = {"weighted": weighted, "uniform": uniform, "p_value": p, "difference": weighted - uniform}
    return {"accuracy": figure, "worst_class_accuracy": dict(figure), "loses": loses}


def test_weights_that_lose_to_uniform_on_validation_are_the_first_warning():
    config = {
        "weighting_strategy": "errors",
        "settings": {"weighting": {"strategy": "errors"}},
        "weights_check": {
            "dbvae": _check(0.812, 0.859, 0.0004, ["accuracy", "worst_class_accuracy"]),
            "sampler": _check(0.85, 0.859, 0.3, []),
        },
        "final_weights": {"ess": 0.05},
    }
    warnings = run_warnings(config)
    first = warnings[0]
    assert first.startswith("The weights (errors) lose to uniform sampling on the validation split")
    assert "dbvae: accuracy 81.2% against 85.9% (p < 0.001), worst class 81.2%" in first
    assert "sampler" not in first  # 0.9 points down, p = 0.3: noise
    assert "--weighting auto" in first and "effective sample size" in warnings[1]
    config["settings"]["weighting"]["strategy"] = "auto"
    assert "longer --auto-epochs" in run_warnings(config)[0]
    config["weights_check"]["dbvae"]["loses"] = []
    assert not run_warnings(config)[0].startswith("The weights")
    assert not any(w.startswith("The weights") for w in run_warnings({"final_weights": {"ess": 0.5}}))
