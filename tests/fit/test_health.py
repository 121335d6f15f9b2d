"""Latent health: KL in nats, active dimensions, reconstruction against the mean image, the linear probe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from debias.data import ImageSplit
from debias.fit.health import advice, is_collapsed, latent_health, linear_probe, mean_image, probe_targets

CPU = torch.device("cpu")


class FakeVAE(nn.Module):
    """encode -> (logit, mu, logvar) with a planted mu; the decoder returns a planted picture."""

    def __init__(self, mu_of, decode):
        super().__init__()
        self.mu_of, self.decode = mu_of, decode
        self.decoder = lambda mu: self.decode(self._x)

    def encode(self, x):
        self._x = x
        mu = self.mu_of(x)
        return torch.zeros(len(x)), mu, torch.zeros_like(mu)


def split(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    attributes = pd.DataFrame({"g": np.arange(n) % 2, "k": np.array(["a", "b", "c", "d"])[np.arange(n) % 4]})
    return ImageSplit(images, np.arange(n) % 2, np.array([f"s{i}" for i in range(n)]), attributes)


def test_a_decoder_of_the_mean_image_is_ratio_one_and_zero_nats():
    data = split()
    mean = mean_image(data.images, np.arange(len(data)))
    model = FakeVAE(lambda x: torch.zeros(len(x), 3), lambda x: mean.expand_as(x))
    health = latent_health(model, data, mean, True, [], 16, CPU, probe=False)
    assert health["reconstruction_ratio"] == pytest.approx(1.0)
    assert health["kl_nats"] == 0.0 and health["active_dims"] == 0 and health["latent_dim"] == 3
    assert health["collapsed"]


def test_a_perfect_decoder_is_ratio_zero_and_kl_is_half_mu_squared_per_dimension():
    data = split()
    mean = mean_image(data.images, np.arange(len(data)))
    model = FakeVAE(lambda x: torch.tensor([[1.0, 0.0, 0.2]]).expand(len(x), 3), lambda x: x)
    health = latent_health(model, data, mean, True, [], 16, CPU, probe=False)
    assert health["reconstruction_ratio"] == pytest.approx(0.0)
    assert health["kl_nats"] == pytest.approx(0.5 + 0.02)  # 0.5 mu^2 with logvar 0
    assert health["active_dims"] == 2  # 0.5 and 0.02 nats are above 0.01; 0 is not


def test_face_detection_measures_the_faces_only():
    data = split()
    rows = np.flatnonzero(data.labels == 1)
    mean = mean_image(data.images, rows)
    expected = torch.from_numpy(data.images[rows].mean(0) / 255.0).float().permute(2, 0, 1)
    assert torch.allclose(mean, expected, atol=1e-6)
    seen = []
    model = FakeVAE(lambda x: seen.append(len(x)) or torch.zeros(len(x), 2), lambda x: x)
    latent_health(model, data, mean, False, [], 100, CPU, probe=False)
    assert seen == [len(rows)]


def test_the_mean_image_is_exact_whatever_the_chunks():
    data = split()
    rows = np.arange(len(data))[::-1]
    exact = torch.from_numpy(data.images.astype(np.float64).sum(0) / len(rows) / 255.0).float().permute(2, 0, 1)
    for chunk in (1, 7, len(rows)):
        assert torch.equal(mean_image(data.images, rows, chunk=chunk), exact)


def test_probe_targets_and_probe():
    attributes = pd.DataFrame({"g": [0, 1] * 30, "k": ["a", "b", "c"] * 20})
    targets = probe_targets(attributes, ["g", "k"])
    assert sorted(targets) == ["g", "k=a", "k=b", "k=c"]
    assert targets["k=b"].tolist()[:3] == [0, 1, 0]
    rng = np.random.default_rng(0)
    informative = np.c_[targets["g"] * 10.0 + rng.normal(size=60), rng.normal(size=60)]
    noise = rng.normal(size=(60, 2))
    assert linear_probe(informative, {"g": targets["g"]})["g"] == 1.0
    assert linear_probe(noise, {"g": targets["g"]})["g"] < 0.75
    assert (
        linear_probe(noise, {"rare": np.r_[np.ones(3), np.zeros(57)].astype(int)}) == {}
    )  # too thin to cross-validate


@pytest.mark.parametrize(
    "nats, ratio, collapsed", [(1.4, 0.86, True), (17.5, 0.53, False), (0.1, 0.5, True), (12, 0.9, True)]
)
def test_collapse_thresholds(nats, ratio, collapsed):
    stats = {"kl_nats": nats, "reconstruction_ratio": ratio}
    assert is_collapsed(stats) is collapsed
    text = advice(stats, beta=0.01, epochs=4, warmup_steps=300)
    assert (text is not None) is collapsed
    if collapsed:
        assert text.startswith("Try a lower --beta (now 0.01), a longer --vae-warmup-steps (now 300)")
        assert text.endswith("(--weighting errors).")
        text = advice(stats, beta=0.01, epochs=4, warmup_steps=300, reads_latents=False)
        assert "--weighting errors" not in text and text.endswith("weights.csv does not depend on them.")


def test_a_fit_records_latent_health_per_epoch_and_at_the_end(tmp_path):
    from debias.fit import FitConfig, run_fit

    config = FitConfig(
        data_options={"limit": 96},
        epochs=2,
        batch_size=32,
        image_size=16,
        latent_dim=4,
        models=("dbvae",),
        device="cpu",
        vae_warmup_steps=0,
    )
    result = run_fit(config, out=tmp_path / "run", progress=False)
    health = json.loads((tmp_path / "run" / "config.json").read_text())["latent_health"]
    assert health == result["latent_health"]
    assert set(health) >= {
        "kl_nats",
        "active_dims",
        "latent_dim",
        "reconstruction_ratio",
        "probe",
        "collapsed",
        "advice",
    }
    assert 0 <= health["active_dims"] <= 4 and health["reconstruction_ratio"] > 0
    assert set(health["probe"]) <= {"subgroup=common", "subgroup=dark", "subgroup=glasses", "subgroup=hat"}
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    history = history[history["model"] == "dbvae"]
    assert len(history) and history[["kl_nats", "active_dims", "reconstruction_ratio"]].notna().all().all()
