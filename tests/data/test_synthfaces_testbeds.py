"""synthfaces' testbed options: noisy training labels and hard common images, each changing only what it names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debias.data import load_dataset
from debias.data.synthfaces import load_synthfaces
from debias.distributed import SINGLE
from debias.errors import UserError
from debias.fit import FitConfig
from debias.fit.draws import GroupBalancedDraw, true_training_labels

SIZES = dict(n_train=400, n_valid=120, n_test=120, image_size=32, seed=5)


def _load(**options):
    return load_synthfaces(**SIZES, **options)


@pytest.mark.parametrize("mode", [{}, {"spurious": "hat"}])
def test_label_noise_flips_an_exact_share_of_training_labels_only(mode):
    clean, noisy = _load(**mode), _load(label_noise=0.1, **mode)
    flipped = noisy.train.attributes["label_flipped"].to_numpy().astype(bool)
    assert flipped.sum() == 40
    assert np.array_equal(noisy.train.labels[flipped], 1 - clean.train.labels[flipped])
    assert np.array_equal(noisy.train.labels[~flipped], clean.train.labels[~flipped])
    assert noisy.train.images.tobytes() == clean.train.images.tobytes()  # only labels change
    target = noisy.target
    assert np.array_equal(noisy.train.attributes[target].to_numpy(), clean.train.labels)  # the truth stays
    for split in ("valid", "test"):
        assert np.array_equal(noisy.split(split).labels, clean.split(split).labels)
        assert "label_flipped" not in noisy.split(split).attributes
    assert _load(label_noise=0.1, **mode).train.labels.tobytes() == noisy.train.labels.tobytes()


def test_hard_images_are_common_ones_in_every_split_and_leave_the_rest_unchanged():
    clean, hard = _load(), _load(hard_rate=0.25)
    for name in ("train", "valid", "test"):
        a, b = clean.split(name), hard.split(name)
        rows = b.attributes["hard"].to_numpy().astype(bool)
        candidates = b.attributes["subgroup"].isin(["common", "nonface"]).to_numpy()
        assert rows.sum() == round(0.25 * candidates.sum()) and not (rows & ~candidates).any()
        assert a.images[~rows].tobytes() == b.images[~rows].tobytes()
        changed = np.abs(a.images[rows].astype(int) - b.images[rows].astype(int)).mean(axis=(1, 2, 3))
        assert (changed > 3).all()
        # lower contrast: the hard images' pixels spread less than the same images drawn plainly
        assert b.images[rows].std(axis=(1, 2)).mean() < 0.8 * a.images[rows].std(axis=(1, 2)).mean()
        assert np.array_equal(a.labels, b.labels)


def test_hard_rate_in_spurious_mode_takes_any_face():
    dataset = _load(spurious="hat", spurious_rate=0.5, hard_rate=0.5)
    hard = dataset.train.attributes["hard"].to_numpy().astype(bool)
    assert hard.sum() == 200 and dataset.train.attributes.loc[hard, "subgroup"].nunique() == 4


def test_the_options_are_checked_and_taken_from_the_command_line_form():
    with pytest.raises(UserError, match="label_noise must be below 0.5"):
        _load(label_noise=0.5)
    with pytest.raises(UserError, match="hard_rate"):
        _load(hard_rate=1.5)
    dataset = load_dataset("synthfaces", progress=False, **SIZES, label_noise=0.05)
    assert dataset.train.attributes["label_flipped"].sum() == 20


def test_the_oracle_balances_the_true_cells_when_labels_are_noisy():
    dataset = _load(label_noise=0.1)
    truth = true_training_labels(dataset)
    assert np.array_equal(truth, dataset.train.attributes["face"].to_numpy())
    assert not np.array_equal(truth, dataset.train.labels)
    config = FitConfig(image_size=32, latent_dim=4, batch_size=32, epochs=1, vae_warmup_steps=0)
    weights = GroupBalancedDraw("oracle", dataset, config, torch.device("cpu"), SINGLE).weights.numpy()
    subgroup = dataset.train.attributes["subgroup"].to_numpy()
    # five true cells (four face subgroups and the non-faces) of equal total weight, flipped rows or not
    totals = [weights[subgroup == name].sum() for name in ("common", "dark", "glasses", "hat", "nonface")]
    assert np.allclose(totals, len(weights) / 5)
    assert np.array_equal(true_training_labels(_load()), _load().train.labels)
