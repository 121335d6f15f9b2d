"""`debias fit --data celeba` end to end through the CLI on a fake CelebA folder in the official formats."""

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner
from fakes import make_fake_celeba

from debias.cli import main

TINY = ["--epochs", "1", "--batch-size", "16", "--latent-dim", "4", "--image-size", "32", "--quiet", "--workers", "0"]


def test_fit_on_fake_celeba_writes_weights_keyed_by_file_name(tmp_path):
    root = make_fake_celeba(tmp_path / "celeba", n=60)
    out = tmp_path / "run"
    args = [
        "fit",
        "--data",
        "celeba",
        "--root",
        str(root),
        "--target",
        "Smiling",
        "--groups",
        "Male,Young",
        *TINY,
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["target"] == "Smiling" and config["dataset"]["group_columns"] == ["Male", "Young"]
    assert config["dataset"]["vae_on_all"] is True
    weights = pd.read_csv(out / "weights.csv")
    assert len(weights) == config["dataset"]["sizes"]["train"]
    assert weights["sample_id"].str.fullmatch(r"\d{6}\.jpg").all()
    assert np.isfinite(weights["weight"]).all() and (weights["weight"] > 0).all()
    # every image is a face, so every row is reweighted (not only the positives)
    assert weights["log_density"].notna().all()
    preds = pd.read_csv(out / "predictions_test.csv")
    assert {"attr_Male", "attr_Young"} <= set(preds.columns)
    assert any("Male=" in g and "Young=" in g for g in config["results"]["test"]["dbvae"]["groups"])


def test_unknown_attribute_is_one_clear_message(tmp_path):
    root = make_fake_celeba(tmp_path / "celeba", n=30)
    result = CliRunner().invoke(
        main,
        ["fit", "--data", "celeba", "--root", str(root), "--target", "Blond_Hiar", *TINY, "--out", str(tmp_path / "r")],
    )
    assert result.exit_code != 0
    assert "Blond_Hair" in result.output and "Traceback" not in result.output


def test_missing_root_is_one_clear_message(tmp_path):
    result = CliRunner().invoke(
        main, ["fit", "--data", "celeba", "--root", str(tmp_path / "nowhere"), *TINY, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0
    assert "nowhere" in result.output and "Traceback" not in result.output
