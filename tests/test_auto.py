"""`debias fit --weighting auto`: the choice follows the validation figures, is recorded, and survives a resume."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import debias.fit.auto
import debias.fit.run
import debias.fit.trainer
from debias.cli import main
from debias.data import load_dataset
from debias.fit import FitConfig, run_fit
from debias.fit.auto import choose, validation_figures, worst_class_accuracy
from debias.summary import format_summary
from debias.weighting import WeightingSettings

TINY = "--data-option spurious=hat --limit 96 --epochs 2 --batch-size 32 --image-size 16 --latent-dim 4 --device cpu --quiet --vae-warmup-steps 0".split()


def fit(*args):
    return CliRunner().invoke(main, ["fit", *map(str, args)])


def planted_probs(valid, accuracy_by_cell: dict) -> np.ndarray:
    """P(label = 1) for the validation split that is right on the given share of each (hat, label) cell."""
    labels = valid.labels
    hat = valid.attributes["hat"].to_numpy()
    correct = np.zeros(len(labels), dtype=bool)
    for (h, y), share in accuracy_by_cell.items():
        rows = np.flatnonzero((hat == h) & (labels == y))
        correct[rows[: int(round(share * len(rows)))]] = True
    predicted = np.where(correct, labels, 1 - labels)
    return np.where(predicted == 1, 0.9, 0.1)


# Candidate A is best on worst-class accuracy (80% on positives, 100% on negatives) but fails one
# group (60%); candidate B is 70% everywhere. Uniform, the reference, is worse than both (30%), so
# both earn their place; the criterion decides which one wins.
PLANTED = {
    "uniform": {(1, 1): 0.3, (0, 1): 0.3, (1, 0): 0.3, (0, 0): 0.3},
    "errors": {(1, 1): 1.0, (0, 1): 0.6, (1, 0): 1.0, (0, 0): 1.0},
    "joint": {(1, 1): 0.7, (0, 1): 0.7, (1, 0): 0.7, (0, 0): 0.7},
    "histogram": {(1, 1): 0.5, (0, 1): 0.5, (1, 0): 0.5, (0, 0): 0.5},
}


@dataclass
class Planted:
    """The candidates a fit ran, in order, and per candidate the share of each (hat, label) cell it gets right."""

    calls: list = field(default_factory=list)
    cells: dict = field(default_factory=lambda: dict(PLANTED))


@pytest.fixture
def planted(monkeypatch):
    record = Planted()

    real_candidate = debias.fit.auto.train_candidate

    def fake_candidate(strategy, dataset, config, device, early_probs, progress, ctx, warmed_up):
        record.calls.append(strategy)
        assert config.auto_epochs == 1
        if strategy.startswith("errors"):
            assert early_probs is not None and len(early_probs) == len(dataset.train)
        _, stats, head_start = real_candidate(strategy, dataset, config, device, early_probs, progress, ctx, warmed_up)
        return planted_probs(dataset.valid, record.cells[strategy]), stats, head_start

    monkeypatch.setattr(debias.fit.auto, "train_candidate", fake_candidate)
    return record


def test_selection_helpers():
    labels = np.array([1, 1, 1, 1, 0, 0])
    assert worst_class_accuracy(labels, np.array([1, 1, 1, 0, 0, 1])) == pytest.approx(0.5)
    figures = {
        "a": {"worst_class_accuracy": 0.8, "accuracy": 0.8},
        "b": {"worst_class_accuracy": 0.8, "accuracy": 0.9},
        "c": {"worst_class_accuracy": 0.7, "accuracy": 0.99},
    }
    assert choose(figures, "worst_class_accuracy") == "b"  # tie on the criterion: the higher accuracy
    assert choose({"x": figures["a"], "y": dict(figures["a"])}, "worst_class_accuracy") == "x"  # full tie: the first
    # An accuracy budget keeps out what loses more than it against the most accurate candidate (c, 0.99).
    assert choose(figures, "worst_class_accuracy", accuracy_budget=0.05) == "c"
    assert choose(figures, "worst_class_accuracy", accuracy_budget=0.09) == "b"
    assert choose(figures, "worst_class_accuracy", accuracy_budget=0.0) == "c"
    attributes = pd.DataFrame({"g": [0, 0, 1, 1, 0, 1]})
    out = validation_figures(labels, np.array([0.9, 0.9, 0.1, 0.9, 0.1, 0.1]), attributes, ["g"])
    assert out["worst_group_accuracy"] == pytest.approx(0.5) and out["worst_group"] == "g=1|label=1"
    assert "worst_group_accuracy" not in validation_figures(labels, np.full(6, 0.9))


# errors is ~90% accurate, joint 70%: joint wins on worst group only when the budget lets it compete.
@pytest.mark.parametrize(
    "val_groups,budget,chosen", [(None, None, "errors"), ("hat", "100", "joint"), ("hat", None, "errors")]
)
def test_auto_picks_what_the_planted_validation_set_favours(tmp_path, planted, val_groups, budget, chosen):
    out = tmp_path / "run"
    extra = (["--val-groups", val_groups] if val_groups else []) + (
        ["--auto-accuracy-budget", budget] if budget else []
    )
    result = fit(
        *TINY,
        "--weighting",
        "auto",
        "--auto-strategies",
        "histogram,errors,joint",
        "--auto-epochs",
        "1",
        *extra,
        "--models",
        "uniform,dbvae",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert planted.calls == ["uniform", "histogram", "errors", "joint"]
    config = json.loads((out / "config.json").read_text())
    selection = config["weighting_selection"]
    assert selection["chosen"] == chosen and config["weighting_strategy"] == chosen
    assert config["settings"]["weighting"]["strategy"] == "auto"
    assert selection["criterion"] == ("worst_group_accuracy" if val_groups else "worst_class_accuracy")
    assert selection["val_groups"] == ([val_groups] if val_groups else [])
    assert selection["accuracy_budget"] == (float(budget) if budget else 2.0)
    figures = selection["candidates"]
    assert list(figures) == ["uniform", "histogram", "errors", "joint"]
    assert all(figures[name]["versus_uniform"]["loses"] == [] for name in ("histogram", "errors", "joint"))
    assert figures["errors"]["worst_class_accuracy"] == pytest.approx(0.8, abs=0.03)
    assert figures["joint"]["worst_class_accuracy"] == pytest.approx(0.7, abs=0.03)
    if val_groups:
        assert figures["errors"]["worst_group_accuracy"] == pytest.approx(0.6, abs=0.03)
        assert figures["joint"]["worst_group_accuracy"] == pytest.approx(0.7, abs=0.03)
    for name in figures:
        assert {"accuracy", "ess", "max_min_ratio", "seconds"} <= set(figures[name])
    assert f"auto chose {chosen}" in result.output
    # The weights shipped are the chosen strategy's: the errors strategies also keep the early predictions.
    assert (out / "early_probs.npy").is_file()
    weights = pd.read_csv(out / "weights.csv")
    assert weights["weight"].mean() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "errors_cells,reason",
    [
        # errors raises the worst class far beyond noise but loses the (0, 0) cell: it loses accuracy
        ({(1, 1): 1.0, (0, 1): 1.0, (1, 0): 1.0, (0, 0): 0.0}, "loses"),
        # errors is as good as uniform: no gain beyond noise
        ({(1, 1): 0.9, (0, 1): 0.9, (1, 0): 0.9, (0, 0): 0.9}, "no gain"),
    ],
)
def test_auto_keeps_uniform_when_no_candidate_beats_it_beyond_noise(tmp_path, planted, errors_cells, reason):
    planted.cells.update(uniform={cell: 0.9 for cell in PLANTED["uniform"]}, errors=errors_cells)
    out = tmp_path / "run"
    result = fit(*TINY, "--weighting", "auto", "--auto-strategies", "errors", "--auto-epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    selection = config["weighting_selection"]
    assert selection["chosen"] == "uniform" and config["weighting_strategy"] == "uniform"
    check = selection["candidates"]["errors"]["versus_uniform"]
    assert bool(check["loses"]) == (reason == "loses")
    assert pd.read_csv(out / "weights.csv")["weight"].eq(1).all()


def test_auto_runs_real_candidates_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = fit(
        *TINY,
        "--weighting",
        "auto",
        "--auto-strategies",
        "histogram,errors+latent",
        "--auto-epochs",
        "1",
        "--models",
        "uniform,dbvae",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    selection = config["weighting_selection"]
    assert selection["chosen"] in ("uniform", "histogram", "errors+latent")
    assert list(selection["candidates"]) == ["uniform", "histogram", "errors+latent"]
    for figures in selection["candidates"].values():
        assert 0 <= figures["worst_class_accuracy"] <= figures["accuracy"] + 1e-9 <= 1 + 1e-9
        assert 0 < figures["ess"] <= 1
    from debias.report import write_report

    html = write_report(out, resamples=100).read_text()
    assert "--weighting auto" in html and "errors+latent" in html
    report = json.loads((out / "report.json").read_text())
    assert report["weighting_selection"]["chosen"] == selection["chosen"]

    # `debias weights` recomputes with any strategy from the saved latents and early predictions.
    runner = CliRunner()
    again = runner.invoke(main, ["weights", str(out), "--weighting", "errors", "--cap", "5"])
    assert again.exit_code == 0, again.output
    recomputed = pd.read_csv(out / "weights-errors-cap5.csv")
    early = np.load(out / "early_probs.npy")
    labels = recomputed["label"].to_numpy()
    wrong = (early >= 0.5).astype(int) != labels
    assert recomputed["weight"].mean() == pytest.approx(1.0) and recomputed["weight"].max() <= 5 + 1e-6
    for label in np.unique(labels):  # each class keeps its share: errors outweigh the right rows of their class
        weights, errors = recomputed.loc[labels == label, "weight"].to_numpy(), wrong[labels == label]
        if errors.any() and not errors.all():
            assert weights[errors].min() > weights[~errors].max()
        else:  # a class the early classifier got all wrong (or all right) has no one to move draws to
            assert np.allclose(weights, weights[0])
    (out / "early_probs.npy").unlink()
    missing = runner.invoke(main, ["weights", str(out), "--weighting", "errors+latent", "--overwrite"])
    assert missing.exit_code != 0 and "early_probs.npy" in missing.output and "Traceback" not in missing.output


def test_resume_after_the_choice_does_not_rerun_the_candidates(tmp_path, planted, monkeypatch):
    out = tmp_path / "run"
    real_run_epoch = debias.fit.trainer.Trainer.run_epoch

    def interrupted(self, epoch, bar):
        if self.name == "dbvae" and epoch == 2 and self.label == "dbvae":
            raise KeyboardInterrupt
        return real_run_epoch(self, epoch, bar)

    monkeypatch.setattr(debias.fit.trainer.Trainer, "run_epoch", interrupted)
    args = [
        *TINY,
        "--weighting",
        "auto",
        "--auto-strategies",
        "histogram,errors,joint",
        "--auto-epochs",
        "1",
        "--val-groups",
        "hat",
        "--auto-accuracy-budget",
        "100",
        "--models",
        "uniform,dbvae",
    ]
    result = fit(*args, "--out", out)
    assert result.exit_code == 130, result.output
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert json.loads(ckpt["weighting_selection"])["chosen"] == "joint"
    assert json.loads((out / "config.json").read_text())["weighting_selection"]["chosen"] == "joint"
    monkeypatch.setattr(debias.fit.trainer.Trainer, "run_epoch", real_run_epoch)
    planted.calls.clear()
    result = fit("--resume", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert planted.calls == []  # the choice came from the checkpoint
    config = json.loads((out / "config.json").read_text())
    assert config["weighting_strategy"] == "joint" and config["status"] == "complete"
    # Changing the strategy on resume is refused like any other setting.
    refused = fit("--resume", out, "--weighting", "errors", "--quiet")
    assert refused.exit_code != 0 and "--weighting errors (the run has auto)" in refused.output
    refused = fit("--resume", out, "--auto-accuracy-budget", "2", "--quiet")
    assert refused.exit_code != 0 and "--auto-accuracy-budget" in refused.output


@pytest.mark.parametrize("warmup", ["0", "5"])
def test_auto_fit_equals_a_fit_with_the_chosen_strategy(tmp_path, planted, warmup):
    # The candidate phase restores the RNG and leaves the warmed-up DB-VAE untouched, so the DB-VAE
    # trains exactly as with --weighting CHOSEN.
    auto, direct = tmp_path / "auto", tmp_path / "direct"
    common = [*TINY, "--models", "uniform,dbvae", "--vae-warmup-steps", warmup]
    assert (
        fit(
            *common, "--weighting", "auto", "--auto-strategies", "histogram,joint", "--auto-epochs", "1", "--out", auto
        ).exit_code
        == 0
    )
    assert json.loads((auto / "config.json").read_text())["weighting_strategy"] == "joint"
    assert fit(*common, "--weighting", "joint", "--out", direct).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(auto / "weights.csv"), pd.read_csv(direct / "weights.csv"))
    dbvae_epochs = pd.read_csv(auto / "history.csv").query("model == 'dbvae'")["epoch"].tolist()
    assert dbvae_epochs == ([1, 2] if warmup == "0" else [1, 2, 3, 4])  # 3 steps per epoch: 5 steps -> 2 warm-up epochs


@pytest.mark.parametrize(
    "args,message",
    [
        (["--weighting", "errors", "--val-groups", "hat"], "--val-groups only applies to --weighting auto"),
        (["--weighting", "auto", "--val-groups", "beard"], "no attribute beard"),
        (
            ["--weighting", "auto", "--auto-strategies", "histogram,bogus"],
            "--auto-strategies must be one of histogram, joint",
        ),
        (["--weighting", "auto", "--auto-accuracy-budget", "-1"], "--auto-accuracy-budget must be >= 0, got -1"),
        (["--weighting", "auto", "--auto-accuracy-budget", "101"], "--auto-accuracy-budget must be <= 100, got 101"),
        (
            ["--weighting", "histogram", "--auto-accuracy-budget", "5"],
            "--auto-accuracy-budget only applies to --weighting auto",
        ),
        (["--weighting", "errors", "--errors-epoch", "3"], "--errors-epoch 3 is after the last epoch"),
        (
            ["--weighting", "errors", "--errors-upweight", "0.5"],
            "--errors-upweight must be >= 1 (1 = no upweighting), got 0.5",
        ),
        (["--data-option", "spurious"], "KEY=VALUE"),
        (["--data-option", "spurious=beard"], "spurious must be one of hat, dark"),
    ],
)
def test_bad_options_are_one_clear_message(tmp_path, args, message):
    result = fit(*TINY, *args, "--out", tmp_path / "run")
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_errors_skip_an_early_classifier_worse_than_the_majority_class(tmp_path, monkeypatch):
    # Planted: after epoch 1 the uniform baseline calls every training image positive (it has not
    # learned anything yet); after epoch 2 it is right on all but the first row. JTT's errors must
    # come from epoch 2: epoch 1's would upweight the whole negative class.
    dataset = load_dataset("synthfaces", image_size=16, limit=96, spurious="hat")
    real_predict = debias.fit.run.sharded_predict
    calls = []

    def planted(model, images, batch_size, device, amp, ctx):
        probs = real_predict(model, images, batch_size, device, amp, ctx)
        if images is not dataset.train.images:  # evaluation of the other splits
            return probs
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            return np.ones_like(probs)
        right = np.where(dataset.train.labels == 1, 0.9, 0.1)
        right[0] = 1.0 - right[0]
        return right

    monkeypatch.setattr(debias.fit.run, "sharded_predict", planted)
    out = tmp_path / "run"
    config = FitConfig(
        data_options={"spurious": "hat", "limit": 96},
        epochs=2,
        batch_size=32,
        image_size=16,
        latent_dim=4,
        device="cpu",
        models=("uniform",),
        weighting=WeightingSettings(strategy="errors"),
        vae_warmup_steps=0,
    )
    result = run_fit(config, out=out, progress=False, dataset=dataset)
    assert calls == [1, 2]
    n = len(dataset.train)
    assert result["early_errors"]["epoch"] == 2 and result["early_errors"]["informative"]
    assert result["early_errors"]["error_rate"] == pytest.approx(1 / n)
    early_probs = np.load(out / "early_probs.npy")
    weights = pd.read_csv(out / "weights.csv")
    wrong = (early_probs >= 0.5) != (weights["label"].to_numpy() == 1)
    assert wrong.sum() == 1 and wrong[0]
    assert weights["weight"][0] == pytest.approx(20 * weights["weight"][1])
    assert "early errors: the uniform baseline after epoch 2, " in format_summary(result)
