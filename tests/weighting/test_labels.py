"""The label-based strategies on a 10-row table worked by hand.

cell (Male, Blond)  rows  P(g) P(y) / P(g, y)        1 / n_gy, mean 1        class balance
men, blond          1     0.5 * 0.4 / 0.1 = 2.0      2.5                      1.25
men, not blond      4     0.5 * 0.6 / 0.4 = 0.75     0.625                    0.8333
women, blond        3     0.5 * 0.4 / 0.3 = 0.6667   0.8333                   1.25
women, not blond    2     0.5 * 0.6 / 0.2 = 1.5      1.25                     0.8333
"""

import numpy as np
import pytest
import torch

from debias.weighting import WeightingSettings, training_weights
from debias.weighting.labels import reweighing_log_weights

GROUPS = np.array(["Male=1"] * 5 + ["Male=0"] * 5)
LABELS = np.array([1, 0, 0, 0, 0, 1, 1, 1, 0, 0])


def weights(strategy, vae_on_all=True, **options):
    latents = torch.zeros(len(LABELS), 3)
    w, _ = training_weights(
        latents,
        torch.from_numpy(LABELS),
        WeightingSettings(strategy=strategy, **options),
        vae_on_all=vae_on_all,
        groups=GROUPS,
    )
    return w.numpy()


def test_groups_is_aif360_reweighing():
    expected = [2.0, 0.75, 0.75, 0.75, 0.75, 2 / 3, 2 / 3, 2 / 3, 1.5, 1.5]
    np.testing.assert_allclose(weights("groups"), expected, rtol=1e-12)
    # the raw reweighing factors already average to 1, so normalizing changed nothing
    np.testing.assert_allclose(np.exp(reweighing_log_weights(GROUPS, LABELS).numpy()), expected, rtol=1e-12)


def test_balanced_groups_gives_every_cell_the_same_mass():
    expected = [2.5, 0.625, 0.625, 0.625, 0.625, 5 / 6, 5 / 6, 5 / 6, 1.25, 1.25]
    np.testing.assert_allclose(weights("balanced-groups"), expected, rtol=1e-12)


def test_classes_balances_the_labels_and_ignores_groups():
    expected = [1.25, 5 / 6, 5 / 6, 5 / 6, 5 / 6, 1.25, 1.25, 1.25, 5 / 6, 5 / 6]
    np.testing.assert_allclose(weights("classes"), expected, rtol=1e-12)
    w, _ = training_weights(
        torch.zeros(10, 3), torch.from_numpy(LABELS), WeightingSettings(strategy="classes"), vae_on_all=True
    )
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("strategy", ["classes", "groups", "balanced-groups"])
def test_label_strategies_score_negatives_in_face_detection_too(strategy):
    np.testing.assert_allclose(weights(strategy, vae_on_all=False), weights(strategy), rtol=1e-12)


def test_the_cap_applies_to_label_strategies():
    w = weights("balanced-groups", cap=2.0)
    assert w.max() == pytest.approx(2.0) and w.mean() == pytest.approx(1.0)
