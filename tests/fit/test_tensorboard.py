"""`debias fit --tensorboard DIR`: the history rows as TensorBoard scalars, read back with TensorBoard's own reader."""

import pandas as pd
import pytest
from click.testing import CliRunner

from debias.cli import main

TINY = [
    "--limit",
    "96",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--latent-dim",
    "4",
    "--image-size",
    "32",
    "--vae-warmup-steps",
    "0",
]


def test_every_epoch_of_every_model_lands_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra: pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board, out = tmp_path / "tb", tmp_path / "run"
    result = CliRunner().invoke(
        main, ["fit", *TINY, "--models", "uniform", "--quiet", "--tensorboard", str(board), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(board))
    events.Reload()
    history = pd.read_csv(out / "history.csv")
    for model in ("uniform", "dbvae"):
        rows = history[history["model"] == model]
        scalars = events.Scalars(f"{model}/valid_accuracy")
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx(rows["valid_accuracy"].tolist(), rel=1e-6)
    assert [s.step for s in events.Scalars("dbvae/ess")] == [1, 2]  # the weight statistics too


def test_tensorboard_is_refused_in_one_message_when_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorboard", None)
    result = CliRunner().invoke(
        main, ["fit", *TINY, "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--tensorboard needs the tensorboard package: pip install tensorboard" in result.output
    assert not (tmp_path / "r").exists()
