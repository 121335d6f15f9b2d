"""`debias fit` end to end through click at tiny size: every file of the run-directory contract."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from debias.cli import main
from debias.weighting import WeightingSettings

TINY = [
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--latent-dim",
    "8",
    "--image-size",
    "32",
    "--quiet",
    "--vae-warmup-steps",
    "0",
]
# 5% rare faces: at the default 0.5% a 160-image draw has no rare face, and the oracle nothing to balance.
SYNTH = ["--data", "synthfaces", "--limit", "160", "--data-option", "rare_rate=0.05"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    result = CliRunner().invoke(main, ["fit", *SYNTH, *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "uniform" in result.output and "dbvae" in result.output and "worst group" in result.output
    return out


def test_writes_every_file_of_the_contract(run_dir):
    for name in [
        "weights.csv",
        "config.json",
        "checkpoint.pt",
        "latents.npy",
        "predictions_test.csv",
        "predictions_valid.csv",
        "history.csv",
    ]:
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp")), "no temporary files left behind"


def test_weights_have_one_row_per_training_sample_finite_positive_mean_one(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    n_train = config["dataset"]["sizes"]["train"]
    weights = pd.read_csv(run_dir / "weights.csv")
    assert list(weights.columns[:2]) == ["sample_id", "weight"]
    assert "log_density" in weights.columns
    assert len(weights) == n_train and weights["sample_id"].is_unique
    assert np.isfinite(weights["weight"]).all() and (weights["weight"] > 0).all()
    assert weights["weight"].mean() == pytest.approx(1.0)
    # face detection: faces are reweighted among themselves, non-faces keep weight 1; the default, auto,
    # keeps every weight 1 when no candidate beat uniform sampling on validation
    faces = weights[weights["label"] == 1]
    assert weights.loc[weights["label"] == 0, "weight"].eq(1.0).all()
    chosen = config["weighting_selection"]["chosen"]
    assert config["weighting_strategy"] == chosen
    assert (faces["weight"].std() > 0) == (chosen != "uniform")
    assert np.load(run_dir / "latents.npy").shape == (n_train, 8)


def test_predictions_cover_both_models_on_the_test_split_with_attributes(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    preds = pd.read_csv(run_dir / "predictions_test.csv")
    assert set(preds["model"]) == {"uniform", "dbvae", "sampler", "oracle"}
    assert (preds.groupby("model").size() == config["dataset"]["sizes"]["test"]).all()
    assert {"sample_id", "label", "prob", "pred", "attr_subgroup"} <= set(preds.columns)
    assert preds["prob"].between(0, 1).all()
    for model in ("uniform", "dbvae", "sampler", "oracle"):
        result = config["results"]["test"][model]
        rows = preds[preds["model"] == model]
        assert result["accuracy"] == pytest.approx((rows["pred"] == rows["label"]).mean())
        assert 0 <= result["worst_group_accuracy"] <= result["accuracy"]


def test_history_and_config(run_dir):
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 8  # 4 models x 2 epochs
    dbvae = history[history["model"] == "dbvae"]
    assert dbvae["ess"].between(0, 1).all() and (dbvae["max_min_ratio"] >= 1).all()
    # the oracle's weights give every true group the same mass, so they are far from uniform
    oracle = history[history["model"] == "oracle"]
    assert (oracle["ess"] < 0.9).all()
    config = json.loads((run_dir / "config.json").read_text())
    assert (
        config["settings"]["epochs"] == 2 and config["settings"]["weighting"]["combine"] == WeightingSettings().combine
    )


def test_checkpoint_loads_with_weights_only(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert set(ckpt["models"]) == {"uniform", "dbvae", "sampler", "oracle"}
    from debias.models import DBVAE

    model = DBVAE(latent_dim=8, image_size=32)
    model.load_state_dict(ckpt["models"]["dbvae"])


def test_models_can_be_skipped_for_speed(tmp_path):
    out = tmp_path / "r"
    args = ["fit", *SYNTH, *TINY, "--models", "dbvae", "--weighting", "histogram", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out / "predictions_test.csv")["model"]) == {"dbvae"}


def test_refuses_existing_output_folder_without_overwrite(run_dir):
    result = CliRunner().invoke(main, ["fit", *SYNTH, *TINY, "--out", str(run_dir)])
    assert result.exit_code != 0
    assert "already exists" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output


def test_bad_option_values_give_one_message(tmp_path):
    for args, needle in [
        (["--alpha", "-1"], "alpha"),
        (["--bins", "1"], "bins"),
        (["--epochs", "0"], "epochs"),
        (["--device", "tpu"], "device"),
        (["--image-size", "40"], "image-size"),
        (["--models", "uniform,bogus"], "bogus"),
    ]:
        result = CliRunner().invoke(main, ["fit", *SYNTH, *TINY, *args, "--out", str(tmp_path / needle)])
        assert result.exit_code != 0, args
        assert needle in result.output and "Traceback" not in result.output


def test_the_fit_checks_the_weighted_models_against_uniform_on_validation(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    check = config["weights_check"]
    assert set(check) == {"dbvae", "sampler"}
    predictions = pd.read_csv(run_dir / "predictions_valid.csv")
    for name, figures in check.items():
        rows = predictions[predictions["model"] == name]
        uniform = predictions[predictions["model"] == "uniform"]
        assert figures["accuracy"]["weighted"] == pytest.approx((rows["pred"] == rows["label"]).mean())
        assert figures["accuracy"]["uniform"] == pytest.approx((uniform["pred"] == uniform["label"]).mean())
        assert 0 <= figures["worst_class_accuracy"]["p_value"] <= 1
        assert set(figures["loses"]) <= {"accuracy", "worst_class_accuracy"}
