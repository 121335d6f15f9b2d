"""`debias weights RUN`: new weights from a run folder's latents, end to end through click."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from debias.cli import main
from debias.errors import UserError
from debias.recompute import recompute_weights
from debias.weighting import WeightingSettings, effective_sample_size, training_weights

N, DIM = 120, 4
FIT_SETTINGS = WeightingSettings(strategy="histogram", bins=7, alpha=0.05, combine="geometric")


def make_run(folder, vae_on_all=False, settings=FIT_SETTINGS):
    """A run folder as `debias fit` leaves it, as far as `debias weights` reads it: latents.npy,
    weights.csv computed from them with `settings`, config.json naming those settings."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(N, DIM)).astype(np.float32)
    latents[:6] += 4.0  # a few rare rows along every dimension
    labels = np.arange(N) % 2
    weights, score = training_weights(torch.from_numpy(latents), torch.from_numpy(labels), settings, vae_on_all)
    ids = [f"img-{i:04d}" for i in range(N)]
    pd.DataFrame(
        {"sample_id": ids, "weight": weights.numpy(), "log_density": (-score).numpy(), "label": labels}
    ).to_csv(folder / "weights.csv", index=False)
    np.save(folder / "latents.npy", latents)
    config = {
        "format_version": 1,
        "status": "complete",
        "settings": {"weighting": settings.to_dict()},
        "dataset": {"vae_on_all": vae_on_all, "name": "fake", "sizes": {"train": N}},
        "results": {},
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


def invoke(*args):
    return CliRunner().invoke(main, ["weights", *map(str, args)])


def test_writes_a_new_file_with_mean_one_and_prints_ess(run):
    before = (run / "weights.csv").read_bytes()
    result = invoke(run, "--alpha", "0.001", "--bins", "5")
    assert result.exit_code == 0, result.output
    out = run / "weights-alpha0.001-bins5-geometric.csv"
    assert out.is_file() and (run / "weights.csv").read_bytes() == before
    new = pd.read_csv(out)
    assert new.columns.tolist() == ["sample_id", "weight", "log_density", "label"]
    assert new["sample_id"].tolist() == pd.read_csv(run / "weights.csv")["sample_id"].tolist()
    assert new["weight"].mean() == pytest.approx(1.0) and (new["weight"] > 0).all()
    assert str(out) in result.output and "ESS" in result.output and "max/min" in result.output
    # the printed ESS is that of the weights written (effective_sample_size has hand-checked values)
    ess = effective_sample_size(torch.tensor(new["weight"].to_numpy()))
    assert f"{ess:.3f}" in result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["alpha"] == 0.001 and sidecar["settings"]["bins"] == 5
    assert not list(run.glob(".*.tmp"))


def test_fit_settings_are_the_defaults_and_reproduce_the_fit(run, tmp_path):
    result = invoke(run)
    assert result.exit_code == 0, result.output
    out = run / "weights-alpha0.05-bins7-geometric.csv"  # from config.json, not the library defaults
    np.testing.assert_allclose(pd.read_csv(out)["weight"], pd.read_csv(run / "weights.csv")["weight"], rtol=1e-12)


def test_different_alpha_or_combine_gives_different_weights(run):
    for args in (["--alpha", "0.001"], ["--alpha", "10"], ["--combine", "product"]):
        assert invoke(run, *args).exit_code == 0
    small = pd.read_csv(run / "weights-alpha0.001-bins7-geometric.csv")["weight"]
    large = pd.read_csv(run / "weights-alpha10-bins7-geometric.csv")["weight"]
    product = pd.read_csv(run / "weights-alpha0.05-bins7-product.csv")["weight"]
    fit = pd.read_csv(run / "weights.csv")["weight"]
    assert not np.allclose(small, large) and not np.allclose(product, fit)
    # large alpha tends to no debiasing: weights flatter than with small alpha
    assert large.std() < small.std()


def test_face_detection_keeps_negatives_at_one_and_attribute_tasks_weight_all(tmp_path):
    detection = make_run(tmp_path / "det", vae_on_all=False)
    attribute = make_run(tmp_path / "attr", vae_on_all=True)
    for folder in (detection, attribute):
        assert invoke(folder, "--alpha", "0.001").exit_code == 0
    det = pd.read_csv(detection / "weights-alpha0.001-bins7-geometric.csv")
    att = pd.read_csv(attribute / "weights-alpha0.001-bins7-geometric.csv")
    assert det.loc[det["label"] == 0, "weight"].eq(1.0).all() and det.loc[det["label"] == 1, "weight"].std() > 0
    assert att.loc[att["label"] == 0, "weight"].std() > 0


def test_cap_limits_the_largest_weight(run):
    assert invoke(run, "--combine", "product", "--alpha", "0.001", "--cap", "2").exit_code == 0
    capped = pd.read_csv(run / "weights-alpha0.001-bins7-product-cap2.csv")["weight"]
    assert capped.max() <= 2 * (1 + 1e-6) and capped.mean() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--alpha", "-1"], "alpha must be >= 0"),
        (["--alpha", "nan"], "--alpha must be a finite number"),
        (["--bins", "1"], "bins must be >= 2"),
        (["--cap", "0.5"], "cap must be >= 1"),
        (["--cap", "2", "--no-cap"], "not both"),
        (
            ["--knn-k", "5"],
            "the weighting here is histogram, which does not read --knn-k (read by joint, errors+joint)",
        ),
        (["--weighting", "errors", "--alpha", "0.1"], "does not read --alpha (read by histogram)"),
    ],
)
def test_bad_settings_give_one_message_and_write_nothing(run, args, fragment):
    files = sorted(p.name for p in run.iterdir())
    result = invoke(run, *args)
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output
    assert result.output.count("Error:") == 1
    assert sorted(p.name for p in run.iterdir()) == files


def test_existing_outputs_and_the_fits_weights_are_protected(run):
    assert invoke(run, "--alpha", "0.1").exit_code == 0
    again = invoke(run, "--alpha", "0.1")
    assert again.exit_code != 0 and "already exists" in again.output and "--overwrite" in again.output
    assert invoke(run, "--alpha", "0.1", "--overwrite").exit_code == 0

    before = (run / "weights.csv").read_bytes()
    for args in (["--out", run / "weights.csv"], ["--out", run / "config.csv", "--overwrite"]):
        result = invoke(run, "--alpha", "0.1", *args)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert (run / "weights.csv").read_bytes() == before

    result = invoke(run, "--alpha", "0.1", "--out", run / "weights.csv", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (run / "weights.csv").read_bytes() != before


def test_out_elsewhere(run, tmp_path):
    target = tmp_path / "elsewhere" / "mine.csv"
    result = invoke(run, "--bins", "3", "--out", target)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(target)) == N and target.with_suffix(".json").is_file()


def test_broken_run_folders_are_user_errors(tmp_path, run):
    result = invoke(tmp_path / "missing")
    assert result.exit_code != 0 and "does not exist" in result.output

    (run / "latents.npy").unlink()
    result = invoke(run)
    assert result.exit_code != 0 and "lacks latents.npy" in result.output and "Traceback" not in result.output

    np.save(run / "latents.npy", np.zeros((N - 1, DIM), dtype=np.float32))
    result = invoke(run)
    assert result.exit_code != 0 and f"has {N} rows" in result.output


def test_library_function_returns_the_summary(run):
    result = recompute_weights(run, alpha=0.2, combine="max")
    assert result["path"].endswith("weights-alpha0.2-bins7-max.csv")
    assert result["settings"]["bins"] == 7 and result["fit_settings"]["alpha"] == 0.05
    assert 0 < result["stats"]["ess"] <= 1 and result["stats"]["max_min_ratio"] >= 1


def test_every_weighting_setting_is_an_option_defaulting_to_the_fits():
    from dataclasses import fields

    text = CliRunner().invoke(main, ["weights", "--help"], terminal_width=200).output
    for flag in ("--weighting", "--errors-upweight", "--errors-epoch", "--joint-method", "--joint-dims", "--knn-k"):
        assert flag in text
    assert text.count("Default: the fit's.") == len(fields(WeightingSettings))


def test_joint_settings_reach_the_weights_and_the_file_name(run):
    result = invoke(run, "--weighting", "joint", "--joint-method", "knn", "--knn-k", "5")
    assert result.exit_code == 0, result.output
    out = run / "weights-joint-joint-methodknn-knn-k5.csv"
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["joint_method"] == "knn" and sidecar["settings"]["knn_k"] == 5
    wanted, _ = training_weights(
        torch.from_numpy(np.load(run / "latents.npy")),
        torch.from_numpy(np.arange(N) % 2),
        WeightingSettings(strategy="joint", joint_method="knn", knn_k=5, bins=7, alpha=0.05, combine="geometric"),
        vae_on_all=False,
    )
    np.testing.assert_allclose(pd.read_csv(out)["weight"], wanted.numpy(), rtol=1e-12)


def test_group_strategies_read_the_group_columns_of_weights_csv(run):
    frame = pd.read_csv(run / "weights.csv")
    # rows 0-9 are men; labels alternate, so 5 blond men among 10 men and 60 blond rows in all
    frame["group_Male"] = (np.arange(N) < 10).astype(int)
    frame.to_csv(run / "weights.csv", index=False)
    result = invoke(run, "--weighting", "groups")
    assert result.exit_code == 0, result.output
    new = pd.read_csv(run / "weights-groups.csv")
    assert "group_Male" in new.columns  # the groups ride along to the new file
    blond_men = (new["group_Male"] == 1) & (new["label"] == 1)
    # P(man) P(blond) / P(blond man) = (10/120)(60/120) / (5/120) = 1: this table is balanced within men
    np.testing.assert_allclose(new.loc[blond_men, "weight"], 1.0, rtol=1e-12)
    assert json.loads((run / "weights-groups.json").read_text())["uses_group_labels"] is True


def test_group_strategy_without_group_columns_says_which_fit_makes_them(run):
    result = invoke(run, "--weighting", "balanced-groups")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "group_<attribute> columns" in result.output
    assert f"debias fit --config {run / 'config.json'} --weighting balanced-groups --groups" in result.output


def test_errors_without_early_predictions_says_which_fit_makes_them(run):
    result = invoke(run, "--weighting", "errors+joint")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"debias fit --config {run / 'config.json'} --weighting errors+joint --out NEW_FOLDER" in result.output


def test_another_errors_epoch_needs_a_new_fit(tmp_path):
    run = make_run(tmp_path / "run", settings=replace(FIT_SETTINGS, errors_epoch=1))
    np.save(run / "early_probs.npy", np.linspace(0.05, 0.95, N))
    config = json.loads((run / "config.json").read_text())
    config["early_errors"] = {"epoch": 2}  # epoch 1 was not informative, the fit took epoch 2
    (run / "config.json").write_text(json.dumps(config))
    assert invoke(run, "--weighting", "errors", "--errors-epoch", "2", "--errors-upweight", "5").exit_code == 0
    result = invoke(run, "--weighting", "errors", "--errors-epoch", "3")
    assert result.exit_code != 0 and "after epoch 2" in result.output
    assert "--weighting errors --errors-epoch 3 --out NEW_FOLDER" in result.output


def test_classes_balances_the_labels_of_the_run(run):
    frame = pd.read_csv(run / "weights.csv")
    frame.loc[:29, "label"] = 1  # 60 + 15 = 75 positives (0-29 and the odd rows above), 45 negatives
    frame.to_csv(run / "weights.csv", index=False)
    assert invoke(run, "--weighting", "classes").exit_code == 0
    new = pd.read_csv(run / "weights-classes.csv")
    # each class gets half of the 120 rows' mass: 60 / 75 = 0.8 per positive, 60 / 45 per negative
    np.testing.assert_allclose(new.loc[new["label"] == 1, "weight"], 0.8, rtol=1e-12)
    np.testing.assert_allclose(new.loc[new["label"] == 0, "weight"], 60 / 45, rtol=1e-12)


def test_a_run_recorded_before_class_shares_recomputes_as_it_ran(tmp_path):
    free = replace(FIT_SETTINGS, keep_class_shares=False)
    run = make_run(tmp_path / "old", vae_on_all=True, settings=free)
    config = json.loads((run / "config.json").read_text())
    del config["settings"]["weighting"]["keep_class_shares"]  # the field did not exist then
    (run / "config.json").write_text(json.dumps(config))
    result = recompute_weights(run, out=tmp_path / "again.csv")
    fit = pd.read_csv(run / "weights.csv")["weight"].to_numpy()
    again = pd.read_csv(result["path"])["weight"].to_numpy()
    assert result["settings"]["keep_class_shares"] is False
    np.testing.assert_allclose(again, fit, rtol=1e-9)
    kept = recompute_weights(run, out=tmp_path / "kept.csv", keep_class_shares=True)
    assert not np.allclose(pd.read_csv(kept["path"])["weight"].to_numpy(), fit)  # the difference is visible


def test_early_predictions_outside_zero_one_are_refused(tmp_path):
    run = make_run(tmp_path / "run")
    np.save(run / "early_probs.npy", np.linspace(-0.5, 1.5, N))
    result = invoke(run, "--weighting", "errors")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "early_probs.npy holds values that are not probabilities in [0, 1]" in result.output
    assert not list(run.glob("weights-*"))


def test_a_config_without_settings_is_refused_not_defaulted(run):
    config = json.loads((run / "config.json").read_text())
    del config["settings"]
    (run / "config.json").write_text(json.dumps(config))
    result = invoke(run, "--alpha", "0.1")
    assert result.exit_code == 1 and "has no settings" in result.output and "Traceback" not in result.output
    assert not list(run.glob("weights-*"))


def test_a_killed_fits_folder_says_to_resume_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    settings = {"weighting": FIT_SETTINGS.to_dict()}
    (run / "config.json").write_text(json.dumps({"format_version": 1, "status": "running", "settings": settings}))
    result = invoke(run)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "did not finish (it was stopped before writing weights.csv, latents.npy)" in result.output
    assert f"Continue it with `debias fit --resume {run}`, then run `debias weights {run}`" in result.output


def test_auto_is_not_offered_where_nothing_is_trained(run):
    result = invoke(run, "--weighting", "auto")
    assert result.exit_code == 2 and "Invalid value for '--weighting'" in result.output
    with pytest.raises(UserError, match="auto chooses a strategy by training"):
        recompute_weights(run, strategy="auto")
    with pytest.raises(UserError, match="does not know: alpah"):
        recompute_weights(run, alpah=0.1)
