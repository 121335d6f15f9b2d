"""synthfaces in spurious mode: a common trait tied to the target in training, balanced validation and test."""

from __future__ import annotations

import numpy as np
import pytest

from debias.data import load_dataset
from debias.data.synthfaces import (
    DARK_MAX,
    SPURIOUS_TARGET,
    SynthFacesConfig,
    load_synthfaces,
    render_images,
    sample_attributes,
)
from debias.errors import UserError

SMALL = dict(n_train=400, n_valid=200, n_test=200, image_size=16)


def _cells(split, trait):
    return split.attributes.groupby(["glasses", trait]).size().to_dict()


@pytest.mark.parametrize("trait", ["hat", "dark"])
def test_training_ties_the_trait_to_the_label_and_other_splits_are_balanced(trait):
    dataset = load_synthfaces(**SMALL, spurious=trait, spurious_rate=0.95)
    assert dataset.target == SPURIOUS_TARGET == "glasses"
    assert dataset.group_columns == [trait] and dataset.vae_on_all is True
    # 95% agree, split evenly over the two common cells; the rare cells get 2.5% of 400 = 10 each.
    assert _cells(dataset.train, trait) == {(1, 1): 190, (0, 0): 190, (1, 0): 10, (0, 1): 10}
    for name in ("valid", "test"):
        assert _cells(dataset.split(name), trait) == {(1, 1): 50, (0, 0): 50, (1, 0): 50, (0, 1): 50}
    for name in ("train", "valid", "test"):
        split = dataset.split(name)
        attrs = split.attributes
        np.testing.assert_array_equal(split.labels, attrs["glasses"].to_numpy())
        assert (attrs["face"] == 1).all() and (attrs["lookalike"] == 0).all()
        assert ((attrs["skin_tone"] < DARK_MAX) == (attrs["dark"] == 1)).all()
        # Each trait on its own is common: the rare groups are combinations.
        assert 0.4 <= attrs[trait].mean() <= 0.6 and 0.4 <= split.labels.mean() <= 0.6
        names = {(1, 1): f"glasses+{trait}", (1, 0): "glasses", (0, 1): trait, (0, 0): "plain"}
        expected = [names[(g, t)] for g, t in zip(attrs["glasses"], attrs[trait])]
        assert attrs["subgroup"].tolist() == expected


def test_the_other_trait_is_independent_nuisance():
    dataset = load_synthfaces(**{**SMALL, "n_train": 2000}, spurious="hat")
    attrs = dataset.train.attributes
    assert 0.2 < attrs["dark"].mean() < 0.3
    by_label = attrs.groupby("glasses")["dark"].mean()
    assert abs(by_label[1] - by_label[0]) < 0.06


def test_rate_option_and_the_registry_path_the_cli_uses():
    dataset = load_dataset("synthfaces", **SMALL, spurious="hat", spurious_rate=0.8)
    assert _cells(dataset.train, "hat") == {(1, 1): 160, (0, 0): 160, (1, 0): 40, (0, 1): 40}
    assert dataset.info["spurious"] == "hat" and dataset.info["spurious_rate"] == 0.8
    # The default mode is untouched: face detection with the subgroup column.
    default = load_dataset("synthfaces", **SMALL)
    assert default.target == "face" and default.group_columns == ["subgroup"] and "dark" not in default.train.attributes


def test_deterministic_by_seed():
    first = load_synthfaces(**SMALL, spurious="hat", seed=3)
    again = load_synthfaces(**SMALL, spurious="hat", seed=3)
    assert first.train.images.tobytes() == again.train.images.tobytes()
    assert first.train.attributes.equals(again.train.attributes)


def test_glasses_and_hat_are_drawn():
    config = SynthFacesConfig(image_size=32, spurious="hat")
    attrs = sample_attributes(64, balanced=True, config=config, rng=np.random.default_rng(0))
    plain = attrs.assign(glasses=0, hat=0)
    base = render_images(plain, config=config, rng=np.random.default_rng(1))
    for column in ("glasses", "hat"):
        edited = plain.assign(**{column: 1})
        changed = render_images(edited, config=config, rng=np.random.default_rng(1))
        diff = np.abs(changed.astype(int) - base.astype(int)).reshape(64, -1).sum(axis=1)
        assert (diff > 0).all(), column
    # The tied trait is the easier cue: a hat changes many more pixels than the thin glasses.
    hat = render_images(plain.assign(hat=1), config=config, rng=np.random.default_rng(1))
    glasses = render_images(plain.assign(glasses=1), config=config, rng=np.random.default_rng(1))
    changed = lambda images: (np.abs(images.astype(int) - base.astype(int)).max(axis=3) > 20).mean()  # noqa: E731
    assert changed(hat) > 2 * changed(glasses)


def test_rare_cells_are_hard_for_a_model_trained_on_the_biased_split():
    # A logistic regression on the pixels, trained on the biased split, leans on the hat: on the
    # balanced test split it is worse on the two rare cells than on the common ones, and worse on
    # them than the same model trained on a split of the same size without the correlation.
    from sklearn.linear_model import LogisticRegression

    def rare_and_common_accuracy(rate):
        dataset = load_synthfaces(
            n_train=1500, n_valid=16, n_test=600, image_size=16, spurious="hat", spurious_rate=rate
        )
        x = dataset.train.images.reshape(len(dataset.train), -1) / 255.0
        model = LogisticRegression(C=0.01, max_iter=300).fit(x, dataset.train.labels)
        test = dataset.test
        correct = model.predict(test.images.reshape(len(test), -1) / 255.0) == test.labels
        rare = (test.attributes["hat"] != test.attributes["glasses"]).to_numpy()
        return correct[rare].mean(), correct[~rare].mean()

    biased_rare, biased_common = rare_and_common_accuracy(0.95)
    balanced_rare, _ = rare_and_common_accuracy(0.5)
    assert biased_rare < biased_common - 0.03, (biased_rare, biased_common)
    assert biased_rare < balanced_rare - 0.05, (biased_rare, balanced_rare)


@pytest.mark.parametrize(
    "options",
    [
        dict(spurious="beard"),
        dict(spurious="hat", spurious_rate=0.4),
        dict(spurious="hat", spurious_rate=1.5),
        dict(spurious="hat", spurious_rate="high"),
    ],
)
def test_invalid_spurious_options_raise_user_error(options):
    with pytest.raises(UserError, match="synthfaces"):
        load_synthfaces(**SMALL, **options)
