"""`debias fit --data celeba` end to end through the CLI on a fake CelebA folder in the official formats."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fakes import make_fake_celeba, make_image_folder

from debias.cli import main

TINY = [
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--latent-dim",
    "4",
    "--image-size",
    "32",
    "--quiet",
    "--workers",
    "0",
    "--vae-warmup-steps",
    "0",
]


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


def test_groups_weighting_gives_blond_men_the_aif360_weight(tmp_path):
    # 60 images: rows 0-35 train. Blond_Hair is 1 on even rows. Men in training: rows 0 and 2
    # (blond) and the odd rows 1..23 (12 not blond); validation and test keep the usual pattern.
    n = 60
    male = np.where((np.arange(n) // 2) % 2 == 0, 1, -1)
    male[:36] = -1
    male[[0, 2]] = 1
    male[1:24:2] = 1
    root = make_fake_celeba(tmp_path / "celeba", n=n, columns={"Male": male})
    out = tmp_path / "run"
    args = ["fit", "--data", "celeba", "--root", str(root), "--groups", "Male", "--weighting", "groups"]
    result = CliRunner().invoke(main, [*args, *TINY, "--models", "uniform", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "uses group labels" in result.output

    weights = pd.read_csv(out / "weights.csv", dtype={"sample_id": str})
    assert len(weights) == 36 and "group_Male" in weights.columns
    men, blond = weights["group_Male"] == 1, weights["label"] == 1
    assert (men & blond).sum() == 2 and men.sum() == 14 and blond.sum() == 18
    # By hand, w = P(g) P(y) / P(g, y) with N = 36:
    #   blond men          (14/36)(18/36) / (2/36)  = 3.5
    #   blond women        (22/36)(18/36) / (16/36) = 0.6875
    #   not-blond men      (14/36)(18/36) / (12/36) = 0.5833
    #   not-blond women    (22/36)(18/36) / (6/36)  = 1.8333
    expected = {(1, 1): 3.5, (0, 1): 0.6875, (1, 0): 7 / 12, (0, 0): 11 / 6}
    for (is_man, label), w in expected.items():
        cell = weights[(weights["group_Male"] == is_man) & (weights["label"] == label)]
        np.testing.assert_allclose(cell["weight"], w, rtol=1e-9)
    assert weights["weight"].mean() == pytest.approx(1.0)

    config = json.loads((out / "config.json").read_text())
    assert config["uses_group_labels"] is True and config["weighting_strategy"] == "groups"


def test_a_group_strategy_without_group_columns_is_one_message(tmp_path):
    folder = make_image_folder(tmp_path / "folder", per_class=12)
    result = CliRunner().invoke(
        main, ["fit", "--data", str(folder), "--weighting", "balanced-groups", *TINY, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--weighting balanced-groups reweighs by the true group" in result.output and "--groups" in result.output


def test_quiet_fit_shows_no_bar_not_even_the_image_decoding_one(tmp_path, capfd):
    from debias.fit import FitConfig, run_fit

    root = make_fake_celeba(tmp_path / "celeba", n=30)
    config = FitConfig(
        data="celeba",
        data_options={"root": str(root), "workers": 0, "cache_dir": str(tmp_path / "cache")},
        epochs=1,
        batch_size=8,
        latent_dim=4,
        image_size=32,
        models=("uniform",),
        vae_warmup_steps=0,
    )
    result = run_fit(config, out=tmp_path / "run", progress=False)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["settings"]["data_options"] == {"root": str(root)}  # no progress, no cache folder
    assert recorded["runtime"]["data_options"] == {"workers": 0, "cache_dir": str(tmp_path / "cache")}
    assert result["status"] == "complete"
