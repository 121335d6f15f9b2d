"""Whether a dataset can train a fit with these settings, checked before anything is written (phase 1 of debias.fit.run)."""

from __future__ import annotations

import numpy as np

from debias.data import Dataset
from debias.errors import UserError
from debias.fit.config import FitConfig
from debias.groups import require_group_values
from debias.weighting import AUTO, STRATEGIES, needs_groups


def check_dataset(dataset: Dataset, config: FitConfig) -> None:
    """UserError when the dataset cannot train this fit: an empty split, one class, another image size, unknown --val-groups."""
    for split in ("train", "valid", "test"):
        if len(dataset.split(split)) == 0:
            raise UserError(f"the {split} split of {dataset.name} is empty; add images to it or use a larger --limit")
    present = np.unique(dataset.train.labels)
    if len(present) < 2:
        raise UserError(
            f"the training split of {dataset.name} has one class only (every label is {int(present[0])}); "
            "a classifier needs training images of both labels 0 and 1"
        )
    if dataset.train.image_size != config.image_size:
        raise UserError(f"dataset images are {dataset.train.image_size}px but --image-size is {config.image_size}")
    if config.uses_group_labels and not dataset.group_columns:
        strategies = config.candidates if config.weighting.strategy == AUTO else (config.weighting.strategy,)
        named = ", ".join(name for name in strategies if needs_groups(name))
        raise UserError(
            f"--weighting {named} reweighs by the true group of every training image, but {dataset.name} has no group "
            "columns; name them with --groups ATTR[,ATTR] (CelebA attributes, a manifest's columns), or choose a "
            f"strategy without group labels ({', '.join(name for name in STRATEGIES if not needs_groups(name))})"
        )
    missing = [name for name in config.val_groups if name not in dataset.valid.attributes.columns]
    if missing:
        known = ", ".join(map(str, dataset.valid.attributes.columns)) or "none"
        raise UserError(
            f"--val-groups: the validation split of {dataset.name} has no attribute {', '.join(missing)}; "
            f"its attributes are: {known}"
        )
    splits = {name: dataset.split(name).attributes for name in ("train", "valid", "test")}
    require_group_values(splits, [*dataset.group_columns, *config.val_groups], dataset.name)
