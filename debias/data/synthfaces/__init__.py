"""`synthfaces`: an embedded, procedurally drawn face-detection dataset with a known bias.

Every image is either a cartoon face (label 1) or a face-coloured distractor (label 0), drawn
with numpy from a seed, so `debias fit` runs offline and its ground truth is known exactly.

Faces have a head ellipse, a skin tone on a continuous scale, eyes (whites and pupils), brows,
a nose hint, a mouth, ears or long hair, neck and shoulders, hair of five colours and two
lengths, and optionally glasses or a hat; pose (shift, scale, in-plane rotation), lighting and
background vary. Each face has at most one rare attribute, which defines its subgroup:

    common   light-to-medium skin, no glasses, no hat
    dark     skin tone in the dark range (tone < 0.3)
    glasses  dark frames and tinted lenses over the eyes
    hat      a crown and a brim over the top of the head

The training split under-represents the three rare subgroups (`rare_rate` of the faces each,
0.5% by default, 50 of 10,000 training faces), as face datasets under-represent dark skin. The non-faces are *not* biased that
way: their tones cover the whole range uniformly and they often carry a hat-like band on top or
glasses-like dark bars (their `hat` / `glasses` columns flag these decoys). So in training,
"dark", "band on top" and "dark bars" are mostly evidence for *non-face*: a classifier that
leans on colour or those shapes is right on the common faces and wrong on the rare ones. The
only cue that works for every face is structure -- two eyes side by side above a mouth, inside a
head -- and non-faces reuse every part of a face (skin-toned head-shaped blobs, eyes and mouths
at scrambled positions, a single eye, hair-like caps, shoulders) so that no part on its own
gives the answer. Validation and test splits are balanced (the four face subgroups in equal
numbers), so worst-subgroup accuracy there measures whether training found the rare faces.

Spurious mode (`spurious="hat"` or `"dark"`) turns the dataset into an attribute task where a
common trait stands in for the target, as blond hair and gender do in CelebA. Every image is a
face; the label is `glasses`. In training the spurious attribute agrees with the label in
`spurious_rate` of the faces (95% by default): most bespectacled faces wear a hat, most others do
not, so "hat" is a shortcut to "glasses" that is both common and easier to see. The two rare cells
(glasses without a hat, a hat without glasses) are combinations of two common values: each trait
on its own is seen in half the faces. Validation and test hold the four cells in equal numbers.
The other of the two traits (dark skin when the spurious one is the hat, and the reverse) appears
in a quarter of the faces of every split, independently, as nuisance variety.

Testbed options (hard.py) make the data one where a weighting's assumption fails: `label_noise`
flips a share of the training labels (validation and test stay true), `hard_rate` draws a share
of the common images hard (low contrast, blur, occlusion) in every split, so that an early
classifier's errors are wrong labels or hard common faces rather than the rare subgroups.

Attribute sampling (`sample_attributes`: label, subgroup, tone, hair, pose) is separate from
drawing (`render_images`): rendering draws its nuisance parameters (geometry, colours, decoy
layout) in fixed-size blocks independent of the attributes, so the same seed redraws the same
scene with a changed attribute (a counterfactual) and other sampling schemes can reuse it.

Files: config.py (SynthFacesConfig and its checks), attributes.py (who is in a split),
canvas.py (antialiased shapes blended into a block of images), render.py (drawing faces and
non-faces from their attributes), hard.py (the testbed options); this file generates the splits and registers the loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from debias.data import register
from debias.data.base import Dataset, ImageSplit
from debias.data.columns import parse_names
from debias.data.options import OPTION_FLAGS, check_limit, option_flag
from debias.data.synthfaces.attributes import (
    DARK_MAX,
    FACE_SUBGROUPS,
    HAIR_COLORS,
    HAIR_LENGTHS,
    LIGHT_MIN,
    NONFACE_SUBGROUP,
    sample_attributes,
    spurious_attributes,
)
from debias.data.synthfaces.config import SPURIOUS_ATTRIBUTES, SPURIOUS_TARGET, SynthFacesConfig
from debias.data.synthfaces.hard import degrade, flipped_rows, hard_rows, testbed_rng
from debias.data.synthfaces.render import render_images, skin_rgb
from debias.errors import UserError


def generate_split(
    n: int,
    *,
    balanced: bool,
    config: SynthFacesConfig,
    rng: np.random.Generator,
    testbed: np.random.Generator | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """`n` samples: images uint8 [n, S, S, 3] and their attributes DataFrame (one row each).

    balanced=False is the biased training mix, balanced=True the validation/test mix; the same
    rng state gives the same bytes. `testbed` is the stream of the hard images (`config.hard_rate`,
    debias.data.synthfaces.hard), needed only when that is above 0; their rows get a `hard` column.
    """
    attributes = sample_attributes(n, balanced=balanced, config=config, rng=rng)
    images = render_images(attributes, config=config, rng=rng)
    if config.hard_rate > 0:
        hard = hard_rows(attributes, config.hard_rate, config.spurious is not None, testbed)
        degrade(images, hard, testbed)
        attributes["hard"] = hard.astype(np.int64)
    return images, attributes


# Options of other datasets that do not apply here, and why (debias.data.options.check_options).
_GENERATED = "it is drawn in memory from a seed: there are no image files to decode or cache"
NOT_TAKEN = {
    "root": "it is drawn in memory from a seed, not read from files",
    "target": f"its target is fixed: face (faces vs non-faces), or {SPURIOUS_TARGET} with --data-option spurious=hat|dark",
    "cache_dir": _GENERATED,
    "workers": _GENERATED,
    "vae_on_all": "the mode decides it (every image is a face in spurious mode only); --vae-on overrides it",
}


_DEFAULTS = SynthFacesConfig()


@register(
    "synthfaces",
    "embedded procedural faces vs non-faces, biased training split, balanced test (offline)",
    not_taken=NOT_TAKEN,
)
def load_synthfaces(
    n_train: int = _DEFAULTS.n_train,
    n_valid: int = _DEFAULTS.n_valid,
    n_test: int = _DEFAULTS.n_test,
    image_size: int = _DEFAULTS.image_size,
    rare_rate: float = _DEFAULTS.rare_rate,
    face_fraction: float = _DEFAULTS.face_fraction,
    seed: int = _DEFAULTS.seed,
    difficulty: float = _DEFAULTS.difficulty,
    limit: int | None = None,
    spurious: str | None = _DEFAULTS.spurious,
    spurious_rate: float = _DEFAULTS.spurious_rate,
    label_noise: float = _DEFAULTS.label_noise,
    hard_rate: float = _DEFAULTS.hard_rate,
    groups: str | Sequence[str] | None = None,
    progress: bool = True,
) -> Dataset:
    """Generate the three splits of `synthfaces` (a few seconds for the defaults).

    Each split has its own child seed, so changing the size of one split leaves the others
    unchanged. `limit` caps every split's size (for quick runs). `spurious` ("hat" or "dark")
    switches to spurious mode (module docstring): target `glasses`, every image a face, groups
    the spurious trait. `label_noise` flips that share of the training labels (the target column
    of the attributes keeps the true value, `label_flipped` marks the rows); `hard_rate` draws that
    share of the common images hard (`hard` column); see debias.data.synthfaces.hard.
    groups: the groups are fixed by the mode (`subgroup`, or the spurious trait); naming those is
        accepted, anything else is a UserError naming them.
    progress: taken like every loader's (--quiet sets it) and ignored: generation shows no bar.
    Invalid values raise UserError.
    """
    limit = check_limit(limit)
    if limit is not None:
        n_train, n_valid, n_test = (min(n, limit) for n in (n_train, n_valid, n_test))
    config = SynthFacesConfig(
        n_train=n_train,
        n_valid=n_valid,
        n_test=n_test,
        image_size=image_size,
        rare_rate=rare_rate,
        face_fraction=face_fraction,
        seed=seed,
        difficulty=difficulty,
        spurious=spurious,
        spurious_rate=spurious_rate,
        label_noise=label_noise,
        hard_rate=hard_rate,
    )
    # Spurious mode: the trait crossed with the label gives the four cells.
    group_columns = ["subgroup"] if config.spurious is None else [config.spurious]
    _check_groups(parse_names(groups), group_columns)
    target = "face" if config.spurious is None else SPURIOUS_TARGET
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    splits = {}
    for index, (name, n, balanced, child) in enumerate(
        (
            ("train", config.n_train, False, seeds[0]),
            ("valid", config.n_valid, True, seeds[1]),
            ("test", config.n_test, True, seeds[2]),
        )
    ):
        testbed = testbed_rng(config.seed, index)
        images, attributes = generate_split(
            n, balanced=balanced, config=config, rng=np.random.default_rng(child), testbed=testbed
        )
        labels = attributes[target].to_numpy(np.int64)
        if name == "train" and config.label_noise > 0:
            # The target column keeps the true value: the oracle balances the true cells and the
            # report can tell a wrong label from a hard image.
            flipped = flipped_rows(n, config.label_noise, testbed)
            labels = np.where(flipped, 1 - labels, labels)
            attributes["label_flipped"] = flipped.astype(np.int64)
        splits[name] = ImageSplit(
            images=images,
            labels=labels,
            sample_ids=np.array([f"synth-{name}-{i:06d}" for i in range(n)]),
            attributes=attributes,
        )
    return Dataset(
        name="synthfaces",
        group_columns=group_columns,
        vae_on_all=config.spurious is not None,  # every image is a face there
        target=target,
        info=asdict(config),
        **splits,
    )


def _check_groups(requested: list[str], group_columns: list[str]) -> None:
    if not requested or requested == group_columns:
        return
    if group_columns == ["subgroup"]:
        meaning = (
            f"subgroup ({', '.join(FACE_SUBGROUPS)} for faces, {NONFACE_SUBGROUP} for the rest, crossed with the face label). "
            f"Leave {OPTION_FLAGS['groups']} out; {option_flag('spurious', 'hat')} or spurious=dark makes a trait the group"
        )
    else:
        meaning = (
            f"{group_columns[0]} (the spurious trait, crossed with the {SPURIOUS_TARGET} label). "
            f"Leave {OPTION_FLAGS['groups']} out"
        )
    raise UserError(
        f"{option_flag('groups', ','.join(requested))} does not apply to the synthfaces dataset: its groups are fixed "
        f"by its mode, here {meaning}."
    )


__all__ = [
    "DARK_MAX",
    "FACE_SUBGROUPS",
    "HAIR_COLORS",
    "HAIR_LENGTHS",
    "LIGHT_MIN",
    "NONFACE_SUBGROUP",
    "SPURIOUS_ATTRIBUTES",
    "SPURIOUS_TARGET",
    "SynthFacesConfig",
    "generate_split",
    "load_synthfaces",
    "render_images",
    "sample_attributes",
    "skin_rgb",
    "spurious_attributes",
]
