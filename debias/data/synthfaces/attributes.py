"""Who is in a split: the attributes of each sample (label, subgroup, tone, hair, pose), no pixels.

Sampling is separate from drawing (render.py), so the same scene can be redrawn with a changed
attribute and other sampling schemes can reuse the renderer. See the package docstring for the
subgroups, the training bias and spurious mode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debias.data.synthfaces.config import SPURIOUS_TARGET, SynthFacesConfig

FACE_SUBGROUPS = ("common", "dark", "glasses", "hat")
# Share of faces carrying the trait that is not the spurious one, in every split (see docstring).
_NUISANCE_TRAIT_RATE = 0.25
NONFACE_SUBGROUP = "nonface"
HAIR_COLORS = ("black", "brown", "blond", "red", "gray")
HAIR_LENGTHS = ("short", "long")

# Faces' tones: the dark subgroup lies below DARK_MAX, every other face above LIGHT_MIN. The gap
# keeps the subgroups unambiguous; non-faces cover [0, 1] uniformly, gap included.
DARK_MAX = 0.3
LIGHT_MIN = 0.4
# Probability of each of HAIR_COLORS, for faces, look-alikes and the hair-like caps of non-faces.
HAIR_P = np.array([0.3, 0.3, 0.18, 0.1, 0.12])


def _group_counts(n_faces: int, balanced: bool, rare_rate: float) -> np.ndarray:
    """Number of faces in each of FACE_SUBGROUPS; exact, so every split has its stated rates."""
    if balanced:
        counts = np.full(4, n_faces // 4)
        counts[: n_faces % 4] += 1
        return counts
    rare = int(round(n_faces * rare_rate))
    rare = min(rare, n_faces // 3)
    return np.array([n_faces - 3 * rare, rare, rare, rare])


def sample_attributes(n: int, *, balanced: bool, config: SynthFacesConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the attributes of `n` samples (who is in the split), without drawing any pixels.

    balanced=False gives the biased training mix (each rare subgroup `rare_rate` of the faces);
    balanced=True splits the faces equally across the four subgroups. `face_fraction` of the
    samples are faces in both cases (exact counts, shuffled). Columns: face, subgroup,
    skin_tone, glasses, hat, hair_color, hair_length, pose_angle (see the module docstring).
    With `config.spurious` set, see `spurious_attributes`.
    """
    if config.spurious is not None:
        return spurious_attributes(n, balanced=balanced, config=config, rng=rng)
    n_faces = int(round(n * config.face_fraction))
    counts = _group_counts(n_faces, balanced, config.rare_rate)
    subgroup = np.concatenate(
        [
            np.repeat(np.array(FACE_SUBGROUPS, dtype=object), counts),
            np.full(n - n_faces, NONFACE_SUBGROUP, dtype=object),
        ]
    )
    subgroup = subgroup[rng.permutation(n)]
    face = subgroup != NONFACE_SUBGROUP
    dark = subgroup == "dark"

    u = rng.random(n)
    tone = np.where(dark, DARK_MAX * u, LIGHT_MIN + (1.0 - LIGHT_MIN) * u)
    tone = np.where(face, tone, u)  # non-faces: uniform over the whole range

    # Non-faces carry the decoys of the rare attributes often, in every split: that is what makes
    # "band on top" and "dark bars" shortcuts to "non-face" in the biased training split.
    p_decoy = min(0.9, 0.35 * config.difficulty)
    decoy_hat = rng.random(n) < p_decoy
    decoy_glasses = rng.random(n) < p_decoy
    glasses = np.where(face, subgroup == "glasses", decoy_glasses)
    hat = np.where(face, subgroup == "hat", decoy_hat)

    # Look-alikes: non-faces drawn as a whole face with one rare attribute but no mouth (a
    # mask, a doll). They exist only where the rare attributes are, so among dark, hatted or
    # bespectacled heads the training data holds more look-alikes than faces: a classifier must
    # learn the finer cue (the mouth) from the few rare faces, while "head with two eyes" is
    # enough for every common face.
    u_look, kind = rng.random(n), rng.integers(0, 3, size=n)
    lookalike = ~face & (u_look < min(0.6, 0.3 * config.difficulty))
    tone = np.where(lookalike & (kind == 0), DARK_MAX * u, np.where(lookalike, LIGHT_MIN + (1.0 - LIGHT_MIN) * u, tone))
    glasses = np.where(lookalike, kind == 1, glasses)
    hat = np.where(lookalike, kind == 2, hat)

    hair_color = np.array(HAIR_COLORS, dtype=object)[rng.choice(len(HAIR_COLORS), size=n, p=HAIR_P)]
    hair_length = np.array(HAIR_LENGTHS, dtype=object)[rng.integers(0, 2, size=n)]
    pose_angle = rng.uniform(-15.0, 15.0, size=n)
    has_hair = face | lookalike
    return pd.DataFrame(
        {
            "face": face.astype(np.int64),
            "subgroup": subgroup,
            "skin_tone": tone.astype(np.float64),
            "glasses": glasses.astype(np.int64),
            "hat": hat.astype(np.int64),
            "lookalike": lookalike.astype(np.int64),
            "hair_color": np.where(has_hair, hair_color, "none"),
            "hair_length": np.where(has_hair, hair_length, "none"),
            "pose_angle": pose_angle.astype(np.float64),
        }
    )


def _cell_counts(n: int, agree_rate: float) -> np.ndarray:
    """Exact sizes of the cells (label, trait) = (1, 1), (0, 0), (1, 0), (0, 1)."""
    agree = int(round(n * agree_rate))
    disagree = n - agree
    return np.array([agree - agree // 2, agree // 2, disagree - disagree // 2, disagree // 2])


def spurious_attributes(n: int, *, balanced: bool, config: SynthFacesConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The attributes of `n` faces in spurious mode (module docstring): the label is `glasses`.

    balanced=False: the trait `config.spurious` agrees with the label in `spurious_rate` of the
    rows; balanced=True: the four cells (label x trait) in equal numbers (exact counts, shuffled).
    Columns: those of `sample_attributes` plus `dark` (0/1); `subgroup` names the cell
    ("glasses+hat", "glasses", "hat", "plain" for spurious="hat").
    """
    trait = config.spurious
    counts = _cell_counts(n, 0.5 if balanced else config.spurious_rate)
    cells = np.array([(1, 1), (0, 0), (1, 0), (0, 1)])
    label_trait = np.repeat(cells, counts, axis=0)[rng.permutation(n)]
    label, tied = label_trait[:, 0].astype(bool), label_trait[:, 1].astype(bool)
    other = rng.random(n) < _NUISANCE_TRAIT_RATE
    dark = tied if trait == "dark" else other
    hat = tied if trait == "hat" else other

    u = rng.random(n)
    tone = np.where(dark, DARK_MAX * u, LIGHT_MIN + (1.0 - LIGHT_MIN) * u)
    names = np.array([["plain", trait], [SPURIOUS_TARGET, f"{SPURIOUS_TARGET}+{trait}"]], dtype=object)
    subgroup = names[label.astype(int), tied.astype(int)]
    hair_color = np.array(HAIR_COLORS, dtype=object)[rng.choice(len(HAIR_COLORS), size=n, p=HAIR_P)]
    hair_length = np.array(HAIR_LENGTHS, dtype=object)[rng.integers(0, 2, size=n)]
    pose_angle = rng.uniform(-15.0, 15.0, size=n)
    return pd.DataFrame(
        {
            "face": np.ones(n, dtype=np.int64),
            "subgroup": subgroup,
            "skin_tone": tone.astype(np.float64),
            "glasses": label.astype(np.int64),
            "hat": hat.astype(np.int64),
            "dark": dark.astype(np.int64),
            "lookalike": np.zeros(n, dtype=np.int64),
            "hair_color": hair_color,
            "hair_length": hair_length,
            "pose_angle": pose_angle.astype(np.float64),
        }
    )
