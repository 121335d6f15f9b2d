"""Fixtures for the report tests: a tiny real fit (session-wide) and hand-made run folders."""

import json

import pandas as pd
import pytest

from debias.fit import FitConfig, run_fit
from debias.report import write_report


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real `debias fit` run folder at toy size (synthfaces, 120 images per split, 32 px)."""
    out = tmp_path_factory.mktemp("report-run") / "run"
    config = FitConfig(
        data="synthfaces",
        data_options={"limit": 120},
        epochs=2,
        batch_size=32,
        latent_dim=6,
        image_size=32,
        device="cpu",
    )
    run_fit(config, out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    """report.html of the tiny run (200 resamples keep it quick)."""
    return write_report(tiny_run, n_boot=200)


def make_run(folder, predictions: pd.DataFrame, group_columns: list[str]):
    """A hand-made run folder: config.json and predictions_test.csv only (no weights, checkpoint or history)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": 1,
        "settings": {
            "data": "hand-made",
            "data_options": {},
            "image_size": 32,
            "latent_dim": 4,
            "width": 16,
            "seed": 0,
        },
        "dataset": {
            "name": "hand-made",
            "target": "y",
            "group_columns": group_columns,
            "vae_on_all": True,
            "sizes": {"train": 0, "valid": 0, "test": int(predictions.groupby("model").size().max())},
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    predictions.to_csv(folder / "predictions_test.csv", index=False)
    return folder


def predictions_table(models: dict[str, list[int]], labels: list[int], groups: list[str]) -> pd.DataFrame:
    """predictions_test.csv rows: one block per model, group attribute `g`."""
    frames = []
    for name, preds in models.items():
        frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "sample_id": [f"s{i}" for i in range(len(labels))],
                    "label": labels,
                    "prob": [0.9 if p else 0.1 for p in preds],
                    "pred": preds,
                    "attr_g": groups,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# A hand-checkable table. Group A: labels 1,1,0,0; group B: labels 1,1,1,0,0,0.
LABELS = [1, 1, 0, 0, 1, 1, 1, 0, 0, 0]
GROUPS = ["A"] * 4 + ["B"] * 6
UNIFORM = [1, 0, 0, 0, 1, 1, 1, 1, 1, 0]  # A|1: 1/2, A|0: 2/2, B|1: 3/3, B|0: 1/3 -> 7/10
DBVAE = [1, 1, 0, 1, 1, 1, 0, 0, 0, 0]  # A|1: 2/2, A|0: 1/2, B|1: 2/3, B|0: 3/3 -> 8/10
