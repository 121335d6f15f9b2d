"""The settings of `synthfaces` (SynthFacesConfig), checked on construction, and the spurious mode's names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from debias.errors import UserError

# Spurious mode: the target and the traits that can be tied to it.
SPURIOUS_TARGET = "glasses"
SPURIOUS_ATTRIBUTES = ("hat", "dark")


@dataclass(frozen=True)
class SynthFacesConfig:
    """Settings of the synthetic dataset; checked on construction (a bad value raises UserError)."""

    # 20,000 training images seen 6 times each (a fit's default budget: 2 warm-up epochs + 4) rather
    # than 10,000 seen twice as often: the same compute, with less memorizing of the few rare faces.
    n_train: int = 20000
    # Validation and test hold 1,000 faces of each subgroup (and as many non-faces): at 250 a group's
    # accuracy moved 0.4 points per image and nothing under ~5 points could be told from noise.
    n_valid: int = 8000
    n_test: int = 8000
    image_size: int = 64
    # Fraction of training faces in each rare subgroup. 0.5%, by the testbed rule (docs/method.md,
    # "Efficacy claims"): with the default augmentation the group-balanced oracle gains 10-45 points
    # of worst-group accuracy over uniform sampling at 0.5% on every seed, only 3-5 at 1%
    # (BENCHMARKS.md, "The testbeds").
    rare_rate: float = 0.005
    face_fraction: float = 0.5  # fraction of faces in every split
    seed: int = 0
    difficulty: float = 1.0  # scales how face-like the non-faces are / how strong the shortcuts are (0 = easy)
    # Spurious mode (module docstring): None, "hat" or "dark". 0.95 agreement makes each rare cell
    # 2.5% of training, rare enough that a uniform classifier takes the shortcut, frequent enough
    # (25 faces per 1,000) that reweighting has examples to work with.
    spurious: str | None = None
    spurious_rate: float = 0.95
    # Testbeds where a weighting's assumption fails (docs/method.md, "Do no harm"); 0 leaves the data as it was.
    # label_noise: share of the *training* labels flipped (exact count, rows drawn at random; the
    # validation and test labels stay true), as real attribute labels are noisy: an early
    # classifier's errors then hold every wrong label, which Just Train Twice upweights.
    label_noise: float = 0.0
    # hard_rate: share of the common images drawn hard (low contrast, blur, half of them with an
    # occluding patch) in every split: the common faces and the non-faces in face detection, every
    # face in spurious mode. The rare subgroups are never drawn hard, so the early errors fall on
    # hard common faces while the rare faces stay rare in appearance only.
    hard_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_valid", "n_test"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("image_size", self.image_size, low=16, high=512)
        _check_int("seed", self.seed, low=0)
        _check_float(
            "rare_rate", self.rare_rate, 0.0, 0.25, "each of the 3 rare subgroups gets this share of training faces"
        )
        _check_float("face_fraction", self.face_fraction, 0.0, 1.0, "both classes are needed", open_interval=True)
        _check_float("difficulty", self.difficulty, 0.0, 2.0, "0 = easy, 1 = default")
        if self.spurious is not None and self.spurious not in SPURIOUS_ATTRIBUTES:
            raise UserError(
                f"synthfaces: spurious must be one of {', '.join(SPURIOUS_ATTRIBUTES)} (the trait tied to the "
                f"{SPURIOUS_TARGET} label in training), got {self.spurious!r}"
            )
        _check_float(
            "spurious_rate", self.spurious_rate, 0.5, 1.0, "share of training faces whose trait agrees with the label"
        )
        _check_float(
            "label_noise",
            self.label_noise,
            0.0,
            0.5,
            "share of training labels flipped; 0.5 makes labels coin flips",
        )
        if self.label_noise >= 0.5:
            raise UserError(
                f"synthfaces: label_noise must be below 0.5 (at 0.5 a label says nothing), got {self.label_noise}"
            )
        _check_float("hard_rate", self.hard_rate, 0.0, 1.0, "share of the common images drawn hard")


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"synthfaces: {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UserError(f"synthfaces: {name} must be {bound}, got {value}")


def _check_float(name: str, value, low: float, high: float, why: str, open_interval: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UserError(f"synthfaces: {name} must be a number, got {value!r}")
    inside = low < value < high if open_interval else low <= value <= high
    if not inside:
        brackets = "()" if open_interval else "[]"
        raise UserError(f"synthfaces: {name} must be in {brackets[0]}{low}, {high}{brackets[1]} ({why}), got {value}")
