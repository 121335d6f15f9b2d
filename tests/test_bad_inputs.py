"""Every bad input gets one message through the CLI, a non-zero exit code and no traceback (unless --debug)."""

import json
import os
import traceback

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import debias.fit.trainer
from debias.cli import main
from debias.errors import UserError
from debias.fit import FitConfig, validate
from debias.weighting import WeightingSettings, training_weights

TINY = "--limit 48 --epochs 2 --batch-size 16 --latent-dim 4 --image-size 16 --models dbvae --device cpu --quiet --vae-warmup-steps 0".split()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "cache"))


def invoke(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def assert_one_message(result, *needles):
    assert result.exit_code not in (0, None), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--alpha", "-1"], ["--alpha must be >= 0", "got -1"]),
        (["--alpha", "nan"], ["--alpha must be a finite number"]),
        (["--bins", "1"], ["--bins must be >= 2", "got 1"]),
        (["--epochs", "-2"], ["--epochs must be >= 1", "got -2"]),
        (["--epochs", "0"], ["--epochs must be >= 1"]),
        (["--lr", "0"], ["--lr must be > 0"]),
        (["--lr", "inf"], ["--lr must be a finite number"]),
        (["--beta", "-0.5"], ["--beta must be >= 0"]),
        (["--cap", "0.5"], ["--cap must be >= 1"]),
        (["--batch-size", "1"], ["--batch-size must be >= 2"]),
        (["--device", "tpu"], ["unknown device 'tpu'", "auto, cpu, cuda"]),
        (["--device", "cuda:x"], ["unknown device"]),
    ],
)
def test_bad_option_values(tmp_path, args, needles):
    out = tmp_path / "run"
    assert_one_message(invoke("fit", *TINY, *args, "--out", out), *needles)
    assert not out.exists(), "nothing is created for a refused fit"


def test_alpha_zero_is_valid_and_uniform_over_latent_space():
    # The paper's limit: alpha 0 makes every occupied bin of a dimension carry the same total weight.
    validate(FitConfig(weighting=WeightingSettings(strategy="histogram", alpha=0.0)))
    with pytest.raises(UserError, match="--alpha must be >= 0"):
        validate(FitConfig(weighting=WeightingSettings(strategy="histogram", alpha=-0.001)))
    latents = torch.tensor([[0.0]] * 6 + [[1.0]] * 3 + [[2.0]])  # one dimension, bins holding 6, 3 and 1 rows
    settings = WeightingSettings(strategy="histogram", alpha=0.0, bins=3)
    weights, _ = training_weights(latents, torch.ones(10, dtype=torch.long), settings, vae_on_all=True)
    totals = [weights[:6].sum().item(), weights[6:9].sum().item(), weights[9:].sum().item()]
    assert totals == pytest.approx([10 / 3] * 3)


def test_cuda_requested_but_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("fit", *TINY, "--device", "cuda", "--out", tmp_path / "run")
    assert_one_message(result, "--device cuda was requested but no CUDA GPU is available", "--device cpu")


def test_existing_output_folder_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_one_message(invoke("fit", *TINY, "--out", out), "already exists and is not empty", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert_one_message(
            invoke("fit", *TINY, "--out", parent / "run"), "cannot write to output folder", "choose another --out"
        )
    finally:
        parent.chmod(0o700)


def test_output_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("fit", *TINY, "--out", blocker / "run")
    assert_one_message(result, f"cannot write to output folder {blocker / 'run'}", "choose another --out")


def write_manifest(folder, labels, splits):
    folder.mkdir()
    rows = []
    for i, (label, split) in enumerate(zip(labels, splits)):
        Image.new("RGB", (20, 20), (10 * i % 255, 80, 160)).save(folder / f"{i}.png")
        rows.append({"path": f"{i}.png", "label": label, "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def test_dataset_with_one_class_only(tmp_path):
    manifest = write_manifest(tmp_path / "one", [1] * 6, ["train", "train", "valid", "valid", "test", "test"])
    result = invoke("fit", *TINY, "--data", manifest, "--out", tmp_path / "run")
    assert_one_message(result, "every label is 1", "two classes")


def test_training_split_with_one_class_only(tmp_path):
    labels = [1, 1, 1, 1, 0, 1, 0, 1]
    splits = ["train"] * 4 + ["valid", "valid", "test", "test"]
    manifest = write_manifest(tmp_path / "m", labels, splits)
    result = invoke("fit", *TINY, "--workers", "0", "--data", manifest, "--out", tmp_path / "run")
    assert_one_message(result, "training split", "one class only", "every label is 1")
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = debias.fit.trainer.train_one_epoch
    calls = []

    def nan_in_second_epoch(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls.append(1)
        return dict(terms, total=float("nan")) if len(calls) == 2 else terms

    monkeypatch.setattr(debias.fit.trainer, "train_one_epoch", nan_in_second_epoch)
    out = tmp_path / "run"
    result = invoke("fit", *TINY, "--weighting", "histogram", "--out", out)  # histogram: the DB-VAE trains alone
    assert_one_message(
        result,
        "the dbvae loss became nan in epoch 2 of 2",
        "lower --lr",
        "--beta",
        "--cap",
        "keeps the last good state: dbvae epoch 1 (of 2 each)",
    )
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epochs_done"] == {"dbvae": 1} and not checkpoint["complete"]
    assert all(torch.isfinite(t).all() for t in checkpoint["models"]["dbvae"].values() if t.is_floating_point())
    assert not (out / "weights.csv").exists()

    # The same checkpoint against other data (here: a changed fingerprint) is refused on --resume.
    checkpoint["dataset"] = "0" * 20
    torch.save(checkpoint, out / "checkpoint.pt")
    result = invoke("fit", "--resume", out, "--quiet")
    assert_one_message(result, "differ from those", "was trained on", "resumed on the same data")


def make_weights_run(folder, ids):
    """What `debias weights` reads from a run folder, with the given sample ids in weights.csv."""
    folder.mkdir()
    n = len(ids)
    pd.DataFrame({"sample_id": ids, "weight": 1.0, "log_density": 0.0, "label": np.arange(n) % 2}).to_csv(
        folder / "weights.csv", index=False
    )
    np.save(folder / "latents.npy", np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32))
    config = {"format_version": 1, "settings": {"weighting": {"bins": 5}}, "dataset": {"vae_on_all": True}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_weights_file_with_duplicate_ids(tmp_path):
    run = make_weights_run(tmp_path / "run", ["a", "b", "b", "c"])
    assert_one_message(invoke("weights", run), "1 sample ids appear more than once", "'b'")


def test_weights_file_with_a_missing_id(tmp_path):
    run = make_weights_run(tmp_path / "run", ["a", "b", "", "c"])
    assert_one_message(invoke("weights", run), "1 of 4 rows have an empty sample_id")


def make_unfinished_run(folder, format_version=1):
    """A run folder as a fit killed in its first epoch leaves it: config.json with status running."""
    folder.mkdir()
    settings = FitConfig(
        data="synthfaces",
        data_options={"limit": 48},
        epochs=2,
        batch_size=16,
        latent_dim=4,
        image_size=16,
        models=("dbvae",),
        device="cpu",
        vae_warmup_steps=0,
        weighting=WeightingSettings(strategy="histogram"),
    ).to_dict()
    config = {"format_version": format_version, "debias_version": "9.9", "status": "running", "settings": settings}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_run_folder_from_an_incompatible_version(tmp_path):
    run = make_unfinished_run(tmp_path / "run", format_version=99)
    result = invoke("fit", "--resume", run)
    assert_one_message(result, "run format 99", "written by debias 9.9", "incompatible version of debias")


def test_checkpoint_from_an_incompatible_version(tmp_path):
    run = make_unfinished_run(tmp_path / "run")
    torch.save({"format_version": 0, "models": {}}, run / "checkpoint.pt")
    assert_one_message(invoke("fit", "--resume", run), "checkpoint.pt has run format 0", "incompatible version")


def test_damaged_checkpoint(tmp_path):
    run = make_unfinished_run(tmp_path / "run")
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_message(invoke("fit", "--resume", run), "cannot read", "checkpoint.pt", "damaged")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--epochs", "3"], ["--epochs 3 (the run has 2)", "Drop those options"]),
        (
            ["--alpha", "0.5", "--combine", "geometric"],
            ["--alpha 0.5 (the run has 0.001)", "--combine geometric (the run has max)"],
        ),
        (["--limit", "10"], ["--limit 10 (the run has 48)"]),
        (["--cap", "3"], ["--cap 3 (the run has unset)"]),
        (["--out", "elsewhere"], ["drop --out elsewhere"]),
        (["--overwrite"], ["--overwrite cannot be combined with --resume"]),
        (["--bins", "1"], ["--bins must be >= 2"]),
    ],
)
def test_resume_refuses_conflicting_settings(tmp_path, args, needles):
    run = make_unfinished_run(tmp_path / "run")
    assert_one_message(invoke("fit", "--resume", run, *args), *needles)


def test_resume_of_a_missing_or_foreign_folder(tmp_path):
    assert_one_message(invoke("fit", "--resume", tmp_path / "nope"), "does not exist", "nothing to resume")
    (tmp_path / "other").mkdir()
    assert_one_message(invoke("fit", "--resume", tmp_path / "other"), "not the run folder of a `debias fit`")


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "fit", *TINY, "--alpha", "-1", "--out", tmp_path / "run")
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert "Traceback" in "".join(traceback.format_exception(*result.exc_info))


# Issue 15: messy real data, shared machines, full disks. Each case: one message, or correct results.


def write_group_manifest(folder, n=24, labels=("Smiling", "not smiling"), male=None):
    """`n` small PNGs and a manifest with text labels and a `male` group column (default: alternating 0/1)."""
    folder.mkdir()
    rows = []
    for i in range(n):
        Image.new("RGB", (20, 20), (10 * i % 255, 80 + i, 160)).save(folder / f"{i}.png")
        split = "train" if i < n // 2 else "valid" if i < 3 * n // 4 else "test"
        rows.append({"path": f"{i}.png", "label": labels[i % 2], "split": split, "male": (i // 2) % 2})
    frame = pd.DataFrame(rows)
    if male is not None:
        frame["male"] = male
    frame.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def test_blank_group_cells_are_one_message_before_anything_is_written(tmp_path):
    male = [None if i % 3 == 0 else (i // 2) % 2 for i in range(24)]  # a third of the rows blank
    manifest = write_group_manifest(tmp_path / "m", male=male)
    out = tmp_path / "run"
    result = invoke("fit", *TINY, "--workers", "0", "--data", manifest, "--groups", "male", "--out", out)
    assert_one_message(
        result, "the --groups column `male` is empty on 8 of 24 rows (line(s) 2, 5, 8, 11, 14, ...)", "`unknown`"
    )
    assert "fairlearn" not in result.output and not out.exists()  # no config.json left at "running"


def test_blank_group_values_of_any_dataset_are_refused():
    from debias.groups import require_group_values

    table = pd.DataFrame({"tone": ["dark", " ", None, "light"], "age": [1, 2, 3, 4]})
    require_group_values({"valid": table}, ["age"], "data")  # complete: nothing to say
    with pytest.raises(UserError, match="`tone` is empty on 2 of 4 rows of the valid split of data"):
        require_group_values({"valid": table}, ["age", "tone"], "data")


def test_one_image_listed_twice_under_two_spellings(tmp_path):
    manifest = write_group_manifest(tmp_path / "m")
    frame = pd.read_csv(manifest)
    (tmp_path / "m" / "imgs").mkdir()
    frame.loc[5, "path"] = "imgs/../3.png"
    frame.to_csv(manifest, index=False)
    result = invoke("fit", *TINY, "--data", manifest, "--out", tmp_path / "run")
    assert_one_message(result, "lists the image '3.png' more than once, on lines 5 and 7", "'imgs/../3.png'")


def test_a_symbolic_link_loop_in_a_manifest_names_the_file(tmp_path):
    manifest = write_group_manifest(tmp_path / "m")
    (tmp_path / "m" / "3.png").unlink()
    (tmp_path / "m" / "3.png").symlink_to("3.png")
    result = invoke("fit", *TINY, "--data", manifest, "--out", tmp_path / "run")
    assert_one_message(
        result, f"cannot read image {tmp_path / 'm' / '3.png'}: too many levels of symbolic links", "Remove or repair"
    )


def test_paths_too_long_for_the_file_system(tmp_path):
    long_out = tmp_path / ("r" * 5000)
    result = invoke("fit", *TINY, "--out", long_out)
    assert_one_message(result, "the path is too long for the file system", "(5,")
    assert str(long_out) not in result.output  # shortened, so the sentence stays readable
    manifest = write_group_manifest(tmp_path / "m")
    frame = pd.read_csv(manifest)
    frame.loc[0, "path"] = "d" * 5000 + ".png"
    frame.to_csv(manifest, index=False)
    result = invoke("fit", *TINY, "--data", manifest, "--out", tmp_path / "run")
    assert_one_message(result, "cannot read image ", "the path is too long for the file system")


def test_a_full_disk_under_the_run_folder_says_so_and_how_to_resume(tmp_path, monkeypatch):
    import shutil

    def short_write(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1216 vs 1100")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4096))
    out = tmp_path / "run"
    result = invoke("fit", *TINY, "--out", out)
    assert_one_message(
        result,
        f"cannot write {out / 'checkpoint.pt'}: no space left on the disk.",
        f"then continue with `debias fit --resume {out}`",
    )
    assert "unexpected pos" not in result.output and not list(out.glob(".*.tmp"))


def test_os_errors_of_other_commands_go_through_the_same_words(tmp_path, monkeypatch):
    import errno

    run = make_weights_run(tmp_path / "run", ["a", "b", "c", "d"])

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    result = invoke("weights", run, "--alpha", "0.01")
    target = run / "weights-alpha0.01-bins5-max.csv"  # named, not its hidden temporary file
    assert_one_message(result, f"Error: {target}: no space left on the disk. Free some space")
    assert not list(run.glob("weights-*"))


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--bins", "2000000000"], ["--bins must be <= 10000", "got 2000000000"]),
        (["--alpha", "1e308"], ["--alpha must be <= 1e+06", "got 1e+308"]),
    ],
)
def test_limits_are_checked_before_anything_is_allocated(tmp_path, args, needles):
    run = make_weights_run(tmp_path / "run", ["a", "b", "c", "d"])
    assert_one_message(invoke("weights", run, *args), *needles)
    assert_one_message(invoke("fit", *TINY, *args, "--out", tmp_path / "new"), *needles)
    assert not (tmp_path / "new").exists()


def test_the_largest_allowed_alpha_and_bins_keep_weights_finite():
    from debias.weighting.settings import MAX_ALPHA, MAX_BINS

    latents = torch.from_numpy(np.random.default_rng(0).normal(size=(300, 100)))
    labels = torch.arange(300) % 2
    for combine in ("product", "geometric", "max"):
        settings = WeightingSettings(strategy="histogram", alpha=MAX_ALPHA, bins=MAX_BINS, combine=combine)
        weights, _ = training_weights(latents, labels, settings, True)
        assert torch.isfinite(weights).all() and float(weights.max() / weights.min()) < 1.0002, combine


def test_the_label_mapping_is_printed_and_overwrite_clears_derived_files(tmp_path):
    manifest = write_group_manifest(tmp_path / "m")
    out = tmp_path / "run"
    result = invoke("fit", *TINY, "--workers", "0", "--data", manifest, "--groups", "male", "--out", out)
    assert result.exit_code == 0, result.output
    assert "labels: 'Smiling' -> 0, 'not smiling' -> 1 (the two `label` values in sorted order" in result.output
    assert invoke("weights", out, "--weighting", "histogram", "--alpha", "0.01").exit_code == 0
    derived = sorted(p.name for p in out.glob("weights-*"))
    assert derived == ["weights-alpha0.01-bins10-max.csv", "weights-alpha0.01-bins10-max.json"]

    again = invoke("fit", *TINY, "--workers", "0", "--data", manifest, "--groups", "male", "--out", out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert not list(out.glob("weights-*")), "a weights file of the replaced run would pass for this one's"
