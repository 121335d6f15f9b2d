"""The testbed options where a weighting's assumption fails: hard common images and noisy training labels.

Both draw from a stream of their own (`testbed_rng`), never from the rendering's, so with both at 0
the dataset's bytes are exactly those of before, and turning one on changes only what it names.

hard_rate    the chosen images are degraded after drawing: contrast pulled towards the image's mean
             (kept 35-60%), a Gaussian blur (sigma 0.8-1.5 px at 64 px), and for half of them a
             flat patch over a random tenth to sixth of the image, which can hide the eyes or
             the mouth. Their cue is still there for the most part, so a classifier can learn them
             from their numbers, but an early one gets many of them wrong: the errors of Just Train
             Twice then fall on hard common images, not on the rare subgroups.
label_noise  an exact share of the training labels is flipped (rows drawn at random among all);
             validation and test keep their true labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from debias.data.synthfaces.attributes import FACE_SUBGROUPS, NONFACE_SUBGROUP

# Rows that can be drawn hard: the common faces and the non-faces (face detection), or every face in
# spurious mode (where no cell is a rare subgroup of appearance).
_HARD_CANDIDATES = (FACE_SUBGROUPS[0], NONFACE_SUBGROUP)


def testbed_rng(seed: int, split_index: int) -> np.random.Generator:
    """The stream of the testbed options for one split: apart from the three the splits render from."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[3 + split_index])


def exact_share(candidates: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """bool [N]: round(rate x candidates) rows drawn at random among the True rows of `candidates`."""
    rows = np.flatnonzero(candidates)
    chosen = np.zeros(len(candidates), dtype=bool)
    chosen[rng.choice(rows, size=int(round(rate * len(rows))), replace=False)] = True
    return chosen


def hard_rows(attributes: pd.DataFrame, rate: float, spurious: bool, rng: np.random.Generator) -> np.ndarray:
    """bool [N]: the rows drawn hard, `rate` of the common images (every face in spurious mode)."""
    candidates = np.ones(len(attributes), dtype=bool) if spurious else attributes["subgroup"].isin(_HARD_CANDIDATES)
    return exact_share(np.asarray(candidates), rate, rng)


def degrade(images: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
    """Degrade images[rows] in place: lower contrast, blur, and an occluding patch on half of them."""
    index = np.flatnonzero(rows)
    n, size = len(index), images.shape[1]
    keep = rng.uniform(0.35, 0.6, n)
    sigma = rng.uniform(0.8, 1.5, n) * size / 64
    occlude = rng.random(n) < 0.5
    side = (rng.uniform(0.3, 0.4, (n, 2)) * size).astype(int)  # a tenth to a sixth of the area
    corner = rng.random((n, 2))
    shade = rng.uniform(60, 190, (n, 3))
    for k, i in enumerate(index):
        x = images[i].astype(np.float32)
        mean = x.mean(axis=(0, 1), keepdims=True)
        x = mean + keep[k] * (x - mean)
        x = gaussian_filter(x, sigma=(sigma[k], sigma[k], 0))
        if occlude[k]:
            h, w = side[k]
            top, left = (corner[k] * (size - side[k])).astype(int)
            x[top : top + h, left : left + w] = shade[k]
        images[i] = np.clip(x + 0.5, 0, 255).astype(np.uint8)


def flipped_rows(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """bool [n]: round(rate x n) training rows whose label is flipped."""
    return exact_share(np.ones(n, dtype=bool), rate, rng)
