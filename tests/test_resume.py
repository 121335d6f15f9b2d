"""Resumable fits: a fit killed with SIGKILL or stopped by Ctrl-C continues with `debias fit --resume`
and ends with the same files an uninterrupted fit writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import debias.fit.trainer
from debias.cli import main
from debias.weighting import WeightingSettings

# --device cpu: the comparison with the uninterrupted fit needs deterministic kernels.
# The DB-VAE draws by errors: auto (the default) is resumed in tests/test_auto.py.
ARGS = "--weighting errors --limit 120 --epochs 3 --image-size 32 --latent-dim 8 --batch-size 32 --models uniform,dbvae --device cpu --quiet --vae-warmup-steps 0".split()
CONTRACT = (
    "weights.csv config.json checkpoint.pt latents.npy predictions_test.csv predictions_valid.csv history.csv".split()
)
REPO = Path(__file__).resolve().parents[1]


def fit(*args):
    return CliRunner().invoke(main, ["fit", *map(str, args)])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    result = fit(*ARGS, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def assert_full_contract(run: Path, reference: Path):
    for name in CONTRACT:
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp")), "temporary files left behind"
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "complete" and "results" in config
    history = pd.read_csv(run / "history.csv")
    for model in ("uniform", "dbvae"):
        assert history.loc[history["model"] == model, "epoch"].tolist() == [1, 2, 3], history
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["complete"] and ckpt["epochs_done"] == {"uniform": 3, "dbvae": 3}
    assert set(ckpt["models"]) == {"uniform", "dbvae"}
    # The same weights, predictions and history as a fit that was never interrupted.
    for name in ("weights.csv", "predictions_test.csv"):
        got, want = pd.read_csv(run / name), pd.read_csv(reference / name)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(
        history.drop(columns="seconds"),
        pd.read_csv(reference / "history.csv").drop(columns="seconds"),
        check_exact=False,
        rtol=1e-6,
    )
    np.testing.assert_allclose(np.load(run / "latents.npy"), np.load(reference / "latents.npy"), rtol=1e-6)


def test_sigkill_after_the_first_epoch_then_resume(tmp_path, reference):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(
        [sys.executable, "-m", "debias", "fit", *ARGS, "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        # checkpoint.pt appears (by rename, so complete) when the first epoch has finished.
        while not (out / "checkpoint.pt").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    # Whatever the kill interrupted, every file there is whole.
    killed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert not killed["complete"] and killed["epochs_done"]["uniform"] >= 1
    assert json.loads((out / "config.json").read_text())["status"] == "running"
    assert not (out / "predictions_test.csv").exists()

    plain_rerun = fit(*ARGS, "--out", out)
    assert plain_rerun.exit_code != 0 and f"--resume {out}" in plain_rerun.output

    result = fit("--resume", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "dbvae" in result.output and "worst group" in result.output
    assert_full_contract(out, reference)

    again = fit("--resume", out, "--quiet")
    assert again.exit_code == 0 and "nothing was left to resume" in again.output


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_finishes(tmp_path, reference, monkeypatch):
    out = tmp_path / "run"
    real_run_epoch = debias.fit.trainer.Trainer.run_epoch

    def interrupted(self, epoch, bar):
        if self.name == "dbvae" and epoch == 2:
            raise KeyboardInterrupt
        return real_run_epoch(self, epoch, bar)

    monkeypatch.setattr(debias.fit.trainer.Trainer, "run_epoch", interrupted)
    result = fit(*ARGS, "--out", out)
    assert result.exit_code == 130
    assert "Interrupted" in result.output and f"debias fit --resume {out}" in result.output
    assert "uniform epochs 1-3, dbvae epoch 1" in result.output
    assert "Traceback" not in result.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epochs_done"] == {"uniform": 3, "dbvae": 1}
    monkeypatch.setattr(debias.fit.trainer.Trainer, "run_epoch", real_run_epoch)

    # Settings come from the run; repeating one of them is fine, changing one is refused.
    refused = fit("--resume", out, "--epochs", "5", "--alpha", str(WeightingSettings().alpha), "--quiet")
    assert refused.exit_code != 0 and "--epochs 5 (the run has 3)" in refused.output
    assert "--alpha" not in refused.output.split("but", 1)[1]
    result = fit("--resume", out, "--epochs", "3", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert_full_contract(out, reference)
