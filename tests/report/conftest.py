"""Fixtures for the report tests: a tiny real fit (session-wide) and hand-made run folders."""

import json

import pandas as pd
import pytest

from debias.fit import FitConfig, run_fit
from debias.report import write_report
from debias.weighting import WeightingSettings


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
        vae_warmup_steps=8,  # two epochs of warm-up: the report shows that phase, at test speed
        # The report tests read latent-density weights (thumbnails, histogram captions); the default errors on a
        # 2-epoch toy fit can leave every weight at 1. tests/report/test_strategy.py covers every strategy's text.
        weighting=WeightingSettings(strategy="histogram"),
    )
    run_fit(config, out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    """report.html of the tiny run (200 resamples keep it quick)."""
    return write_report(tiny_run, resamples=200)


def make_run(
    folder,
    predictions: pd.DataFrame,
    group_columns: list[str],
    config: dict | None = None,
    history: pd.DataFrame | None = None,
):
    """A hand-made run folder: config.json and predictions_test.csv (and history.csv when given).

    `config`: keys merged into config.json's top level (weighting_strategy, latent_health, ...).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = {
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
    (folder / "config.json").write_text(json.dumps({**base, **(config or {})}))
    predictions.to_csv(folder / "predictions_test.csv", index=False)
    if history is not None:
        history.to_csv(folder / "history.csv", index=False)
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


# A latent_health record as `debias fit` writes it, for a healthy and a collapsed DB-VAE.
HEALTHY = {
    "kl_nats": 17.5,
    "active_dims": 100,
    "latent_dim": 100,
    "reconstruction_error": 0.053,
    "mean_image_error": 0.1,
    "reconstruction_ratio": 0.53,
    "probe": {"Male": 0.91},
    "collapsed": False,
    "advice": None,
}
COLLAPSED = {
    "kl_nats": 1.4,
    "active_dims": 3,
    "latent_dim": 100,
    "reconstruction_error": 0.098,
    "mean_image_error": 0.1,
    "reconstruction_ratio": 0.98,
    "probe": {},
    "collapsed": True,
    "advice": "Lower --beta (now 0.01) to 0.0005 and fit again.",
}
