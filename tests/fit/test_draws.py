"""How each model draws its rows: uniform, the DB-VAE's own density, a weights file, the group-balanced oracle."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from debias.data import Dataset, ImageSplit
from debias.distributed import SINGLE
from debias.fit import FitConfig
from debias.fit.config import MODELS
from debias.fit.draws import DRAWS, DensityDraw, FileDraw, GroupBalancedDraw, UniformDraw, group_balanced_weights
from debias.fit.trainer import Trainer
from debias.train import encode_all
from debias.weight_files import write_weights
from debias.weighting import WeightingSettings, training_weights

CPU = torch.device("cpu")


def dataset(n=40, groups=None):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    groups = np.asarray(groups if groups is not None else (np.arange(n) // 2) % 2)

    def split(name):
        # each row's first pixel is its row number, so a drawn image tells which row it was
        images = rng.integers(0, 255, size=(n, 16, 16, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = np.arange(n)
        return ImageSplit(images, labels, np.array([f"{name}{i}" for i in range(n)]), pd.DataFrame({"g": groups}))

    return Dataset("tiny", split("train"), split("valid"), split("test"), ["g"], vae_on_all=True, target="y")


CONFIG = FitConfig(
    batch_size=8,
    image_size=16,
    latent_dim=4,
    eval_batch_size=16,
    seed=3,
    weighting=WeightingSettings(strategy="histogram"),
)


def drawn_rows(draw, epoch=1):
    return [int(r) for x, _ in draw.batches(epoch, {}) for r in x[:, 0, 0, 0]]


def test_uniform_draw_visits_every_row_once_in_an_order_that_changes_by_epoch():
    data = dataset()
    draw = UniformDraw("uniform", data, CONFIG, CPU, SINGLE)
    first, second = drawn_rows(draw, 1), drawn_rows(draw, 2)
    assert sorted(first) == list(range(40)) and sorted(second) == list(range(40))
    assert first != second and drawn_rows(draw, 1) == first  # seeded by (seed, epoch, model)


def test_group_balanced_weights_give_each_group_and_label_the_same_mass():
    # groups x label cells of 1, 1, 2 and 4 rows -> weights proportional to 1, 1, 1/2, 1/4
    data = dataset(8, groups=[0, 0, 0, 0, 0, 1, 1, 1])  # labels 0,1,0,1,0,1,0,1
    w = group_balanced_weights(data).numpy()
    cells = ["g0y0", "g0y1", "g0y0", "g0y1", "g0y0", "g1y1", "g1y0", "g1y1"]
    mass = pd.Series(w).groupby(cells).sum()
    np.testing.assert_allclose(mass.to_numpy(), 2.0)  # 8 rows, mean 1, four cells
    assert w[6] == pytest.approx(2.0) and w[0] == pytest.approx(2 / 3)


def test_oracle_draws_rare_cells_as_often_as_common_ones():
    data = dataset(400, groups=[1 if i < 20 else 0 for i in range(400)])
    draw = GroupBalancedDraw("oracle", data, FitConfig(batch_size=400, image_size=16), CPU, SINGLE)
    draws = np.concatenate([drawn_rows(draw, e) for e in range(1, 11)])
    share_rare = np.isin(draws, np.arange(20)).mean()
    assert 0.4 < share_rare < 0.6  # the rare group holds 5% of the rows and half the draws


def test_file_draw_follows_the_weights_file(tmp_path):
    data = dataset()
    weights = np.ones(40)
    weights[7] = 40.0
    path = write_weights(tmp_path / "w.csv", data.train.sample_ids, weights * 40 / weights.sum())
    draw = FileDraw("sampler", data, CONFIG, CPU, SINGLE)
    draw.weights_file = path
    counts = Counter(r for e in range(1, 6) for r in drawn_rows(draw, e))
    assert counts[7] > 5 * max(c for r, c in counts.items() if r != 7)


def test_density_draw_on_one_process_is_training_weights_of_the_encoded_latents():
    """The one refresh path (sharded, here over one process) gives the single-process weights."""
    data = dataset()
    for strategy in ("histogram", "joint"):
        config = FitConfig(
            image_size=16, latent_dim=4, eval_batch_size=16, weighting=WeightingSettings(strategy=strategy)
        )
        draw = DensityDraw("dbvae", data, config, CPU, SINGLE)
        trainer = Trainer(draw)
        stats = draw.refresh()
        latents = encode_all(trainer.model, data.train.images, 16, CPU)
        weights, score = training_weights(latents, torch.tensor(data.train.labels), config.weighting, True)
        assert torch.equal(draw.weights, weights) and torch.equal(draw.latents, latents)
        assert torch.equal(draw.log_density, -score)
        assert 0 < stats["ess"] <= 1


def test_every_model_has_a_draw_and_trains_in_the_order_of_its_stream():
    assert tuple(DRAWS) == MODELS  # a model named in the settings but without a draw would fail mid-fit
    assert FitConfig(models=("oracle", "uniform")).models == ("uniform", "dbvae", "oracle")
    data, config = dataset(), FitConfig(image_size=16, latent_dim=4)
    streams = [DRAWS[name](name, data, config, CPU, SINGLE).stream for name in FitConfig().models]
    assert streams == list(range(len(MODELS)))  # one random stream per model, none shared


def _face_detection(n=40):
    """dataset() as face detection: the VAE models the positives only."""
    data = dataset(n)
    return Dataset("tiny", data.train, data.valid, data.test, ["g"], vae_on_all=False, target="y")


def _count_encoded(monkeypatch) -> list[int]:
    """Patch the draws' encode_all to record how many images each call encodes."""
    import debias.fit.draws

    counts: list[int] = []

    def counting(model, images, *args, **kwargs):
        only = args[3] if len(args) > 3 else kwargs.get("only")
        counts.append(len(images) if only is None else int(np.sum(only)))
        return encode_all(model, images, *args, **kwargs)

    monkeypatch.setattr(debias.fit.draws, "encode_all", counting)
    return counts


@pytest.mark.parametrize("strategy", ["errors", "classes", "groups"])
def test_an_epochs_refresh_encodes_nothing_when_the_weights_do_not_read_latents(monkeypatch, strategy):
    data = _face_detection()
    config = replace(CONFIG, weighting=WeightingSettings(strategy=strategy))
    draw = DensityDraw("dbvae", data, config, CPU, SINGLE)
    Trainer(draw)
    draw.early_probs = np.linspace(0.05, 0.95, len(data.train))
    counts = _count_encoded(monkeypatch)
    draw.refresh(keep_latents=False)
    epoch_weights, epoch_density = draw.weights.clone(), draw.log_density.clone()
    assert counts == [] and draw.latents is None
    draw.refresh()  # the final pass: every row, for latents.npy
    assert counts == [len(data.train)] and draw.latents.shape == (len(data.train), config.latent_dim)
    assert torch.equal(draw.weights, epoch_weights)
    assert torch.equal(draw.log_density.nan_to_num(), epoch_density.nan_to_num())
    if strategy == "errors":
        assert epoch_weights.std() > 0  # the early errors were upweighted, not a constant vector


@pytest.mark.parametrize("strategy", ["histogram", "joint", "errors+latent"])
def test_an_epochs_refresh_encodes_only_the_scored_rows(monkeypatch, strategy):
    data = _face_detection()
    settings = WeightingSettings(strategy=strategy, joint_dims=2, joint_components=2)
    draw = DensityDraw("dbvae", data, replace(CONFIG, weighting=settings), CPU, SINGLE)
    trainer = Trainer(draw)
    draw.early_probs = np.linspace(0.05, 0.95, len(data.train))
    counts = _count_encoded(monkeypatch)
    draw.refresh(keep_latents=False)
    positives = data.train.labels == 1  # the rows face detection scores
    assert counts == [int(positives.sum())] and draw.latents is None
    latents = encode_all(trainer.model, data.train.images, 16, CPU, only=positives)
    labels = torch.tensor(data.train.labels)
    weights, _ = training_weights(latents, labels, settings, False, draw.early_probs)
    assert torch.equal(draw.weights, weights) and weights[positives].std() > 0
    assert (draw.weights[~positives] == 1).all()
    draw.refresh()  # the final pass encodes every row; the weights move by rounding at most
    assert counts[1:] == [len(data.train)]
    torch.testing.assert_close(draw.weights, weights, rtol=1e-4, atol=1e-6)


def test_encoding_only_some_rows_leaves_nan_in_the_others_and_shards_of_whole_blocks_add_up():
    data = dataset()
    trainer = Trainer(DensityDraw("dbvae", data, CONFIG, CPU, SINGLE))
    images, only = data.train.images, np.arange(len(data.train)) % 3 == 0
    some = encode_all(trainer.model, images, 16, CPU, only=only)
    assert torch.isnan(some[~only]).all() and torch.isfinite(some[only]).all()
    torch.testing.assert_close(some[only], encode_all(trainer.model, images, 16, CPU)[only])
    # two processes' shards of whole blocks of 16 rows run the batches one process runs: the same bits
    shards = [encode_all(trainer.model, images[r], 16, CPU, only=only[r]) for r in (slice(0, 16), slice(16, 40))]
    assert torch.equal(torch.cat(shards).nan_to_num(), some.nan_to_num())
    assert encode_all(trainer.model, images[:0], 16, CPU).shape == (0, CONFIG.latent_dim)


def test_models_are_named_once_in_training_order():
    assert MODELS == ("uniform", "dbvae", "sampler", "oracle")
    assert FitConfig().models == MODELS


def test_the_dbvae_warms_up_on_uniform_draws_for_whole_epochs_of_at_least_the_given_steps():
    data = dataset()  # 40 rows, batch 8: 5 steps per epoch
    config = FitConfig(
        batch_size=8,
        image_size=16,
        latent_dim=4,
        eval_batch_size=16,
        epochs=2,
        vae_warmup_steps=6,
        weighting=WeightingSettings(strategy="histogram"),
    )
    draw = DensityDraw("dbvae", data, config, CPU, SINGLE)
    Trainer(draw)
    assert draw.steps_per_epoch == 5 and draw.warmup_epochs == 2 and draw.epochs == 4
    row: dict = {}
    assert sorted(drawn_rows(draw, 2)) == list(range(40))  # uniform: every row once, no weights computed
    assert draw.weights is None
    draw.indices(3, torch.Generator().manual_seed(0), row)
    assert draw.weights is not None and "ess" in row
    no_warmup = DensityDraw("dbvae", data, replace(config, vae_warmup_steps=0), CPU, SINGLE)
    assert no_warmup.warmup_epochs == 0 and no_warmup.epochs == 2


def test_every_model_trains_the_dbvaes_warm_up_too_so_budgets_match():
    # A DB-VAE with more epochs than the uniform baseline would beat it by budget, not by its weights.
    data = dataset(groups=["a", "b"] * 20)
    config = FitConfig(batch_size=8, image_size=16, latent_dim=4, epochs=2, vae_warmup_steps=6)
    draws = [UniformDraw, DensityDraw, GroupBalancedDraw, FileDraw]
    assert [draw("dbvae", data, config, CPU, SINGLE).epochs for draw in draws] == [4, 4, 4, 4]


def test_a_candidate_run_leaves_the_warmed_up_dbvae_and_its_optimizer_untouched():
    from debias.fit.auto import train_candidate

    data = dataset()
    config = FitConfig(
        batch_size=8,
        image_size=16,
        latent_dim=4,
        eval_batch_size=16,
        epochs=2,
        vae_warmup_steps=5,
        auto_epochs=1,
        weighting=WeightingSettings(strategy="histogram"),
    )
    warmed = Trainer(DensityDraw("dbvae", data, config, CPU, SINGLE))
    warmed.train(False, last_epoch=warmed.draw.warmup_epochs)
    model_before = {k: v.clone() for k, v in warmed.model.state_dict().items()}
    optimizer_before = {
        i: {k: v.clone() for k, v in s.items()} for i, s in warmed.optimizer.state_dict()["state"].items()
    }
    probs, stats, head_start = train_candidate("histogram", data, config, CPU, None, False, SINGLE, warmed)
    assert len(probs) == len(data.valid) and 0 < stats["ess"] <= 1
    assert [row["epoch"] for row in head_start.history] == [warmed.draw.warmup_epochs + 1]
    assert all(torch.equal(v, model_before[k]) for k, v in warmed.model.state_dict().items())
    after = warmed.optimizer.state_dict()["state"]
    assert all(torch.equal(after[i][k], v) for i, s in optimizer_before.items() for k, v in s.items())
