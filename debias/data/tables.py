"""From a table of image files (path, id, label, split, attributes) to a `Dataset` backed by the image cache."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from debias.data.base import SPLITS, Dataset, ImageSplit
from debias.data.cache import cached_images
from debias.data.options import check_limit
from debias.errors import UserError

# Used when a manifest or image folder has no split of its own.
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


def seeded_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """A split name ("train"/"valid"/"test") per row, 70/15/15 within each label, reproducible from `seed`.

    Every class with at least 3 samples gets at least one in each split, so small sets still have
    both classes in validation and test.
    """
    labels = np.asarray(labels)
    out = np.empty(len(labels), dtype=object)
    rng = np.random.default_rng(seed)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n = len(rows)
        n_valid = int(round(SPLIT_FRACTIONS[1] * n))
        n_test = int(round(SPLIT_FRACTIONS[2] * n))
        if n >= 3:
            n_valid, n_test = max(1, n_valid), max(1, n_test)
        n_train = n - n_valid - n_test
        out[rows[:n_train]] = "train"
        out[rows[n_train : n_train + n_valid]] = "valid"
        out[rows[n_train + n_valid :]] = "test"
    return out.astype(str)


def assemble_dataset(
    name: str,
    table: pd.DataFrame,
    attribute_columns: Sequence[str],
    group_columns: Sequence[str],
    target: str,
    vae_on_all: bool,
    image_size: int,
    limit: int | None,
    cache_dir,
    workers: int | None,
    key_parts: Sequence[str],
    info: dict,
    empty_split_hint: str = "",
    progress: bool = True,
) -> Dataset:
    """Build the Dataset for `table`, one row per image in the order wanted within each split.

    `table` has columns `file` (path to read), `sample_id`, `label` (0/1), `split` (one of SPLITS)
    and the `attribute_columns` kept for evaluation. `limit` keeps the first N rows of each split.
    All images go through one cache build; each split's images are a slice (a view) of it.
    Raises UserError when a split is empty, explaining with `empty_split_hint`. `progress` shows
    the cache build's progress bar.
    """
    limit = check_limit(limit)
    parts = []
    for split in SPLITS:
        rows = table[table["split"] == split]
        if limit is not None:
            rows = rows.head(limit)
        if rows.empty:
            raise UserError(
                f"the {split} split of {name} has no images.{(' ' + empty_split_hint) if empty_split_hint else ''}"
            )
        parts.append(rows)
    ordered = pd.concat(parts, ignore_index=True)
    all_images = cached_images(
        list(ordered["file"]), image_size, key_parts, cache_dir=cache_dir, workers=workers, desc=name, progress=progress
    )
    splits = {}
    start = 0
    for split, rows in zip(SPLITS, parts):
        stop = start + len(rows)
        splits[split] = ImageSplit(
            images=all_images[start:stop],
            labels=rows["label"].to_numpy(dtype=np.int64),
            sample_ids=rows["sample_id"].to_numpy(dtype=str),
            attributes=rows[list(attribute_columns)].reset_index(drop=True),
        )
        start = stop
    info = dict(info)
    info.update(
        image_size=int(image_size),
        limit=limit,
        cache_file=str(getattr(all_images, "filename", "")),
        split_sizes={s: len(splits[s]) for s in SPLITS},
        positives={s: int(splits[s].labels.sum()) for s in SPLITS},
    )
    return Dataset(
        name=name,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        group_columns=list(group_columns),
        vae_on_all=bool(vae_on_all),
        target=target,
        info=info,
    )
