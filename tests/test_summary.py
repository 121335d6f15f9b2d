"""What `debias fit` prints at the end: the table, then latent health and warnings, on hand-made results."""

from test_run_warnings import COLLAPSED

from debias.summary import format_summary


def _result(**extra):
    test = {
        "uniform": {"accuracy": 0.5, "worst_group_accuracy": 0.0, "worst_group": "g=a|label=1", "selection_rate": 0.0},
        "dbvae": {"accuracy": 0.8, "worst_group_accuracy": 0.6, "worst_group": "g=b|label=0", "selection_rate": 0.45},
    }
    return {
        "run_dir": "runs/x",
        "results": {"test": test},
        "final_weights": {"ess": 0.5, "max_min_ratio": 3.0},
        "weighting_strategy": "histogram",
        "seconds": 12.0,
        **extra,
    }


def test_summary_warns_of_a_constant_predictor():
    lines = format_summary(_result()).splitlines()
    assert lines[-1] == (
        "WARNING: uniform predicts class 0 for every test image: a constant predictor, whose accuracy counts the "
        "test images of that class and whose group comparisons mean nothing. Train longer (--epochs) or check the "
        "learning rate (--lr)."
    )
    assert "uniform          0.500        0.000  g=a|label=1" in lines


def test_summary_shows_latent_health_and_group_weights_and_warns():
    text = format_summary(
        _result(
            latent_health=COLLAPSED,
            group_weights={
                "g=a|label=1": {"rows": 95, "mean_weight": 1.02},
                "g=b|label=1": {"rows": 5, "mean_weight": 0.41},
            },
            final_weights={"ess": 0.05, "max_min_ratio": 300.0},
        )
    )
    assert "mean weight per group cell: g=a|label=1 1.02x, g=b|label=1 0.41x" in text
    assert "latent health: KL 1.4 nats per image, 3 of 100 dimensions active" in text
    warnings = [line for line in text.splitlines() if line.startswith("WARNING: ")]
    assert len(warnings) == 4
    assert warnings[1].startswith("WARNING: The DB-VAE's latent space collapsed") and "Lower --beta" in warnings[1]
    assert warnings[2].startswith("WARNING: weights.csv's effective sample size is 5.0%")
    assert warnings[3].startswith("WARNING: The group cell g=b|label=1 is 5.0% of the training rows but gets 0.41x")


def test_a_summary_without_the_new_keys_has_no_warnings():
    result = _result()
    for m in result["results"]["test"].values():
        del m["selection_rate"]
    assert "WARNING" not in format_summary(result)
