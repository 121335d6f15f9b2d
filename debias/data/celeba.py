"""CelebA as it lies on disk in the official layout (the one torchvision reads): `--data celeba --root DIR`.

    DIR/ (or DIR/celeba/)
      img_align_celeba/000001.jpg ...   202,599 aligned faces, 178x218 JPEG
      list_attr_celeba.txt              line 1: count; line 2: 40 attribute names; then `file -1/1 x 40`
      list_eval_partition.txt           `file 0|1|2` (train / valid / test)

The text files are parsed here rather than by torchvision.datasets.CelebA, which insists on the
MD5 sums of the official files and so refuses re-split samples and copies with Windows line endings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from debias.data import register
from debias.data.base import SPLITS, Dataset
from debias.data.columns import parse_names, require_names
from debias.data.tables import assemble_dataset
from debias.errors import UserError

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
PARTITION_CODES = {0: "train", 1: "valid", 2: "test"}
README_HINT = "See data/README.md for where to get CelebA and the expected layout."


# Options of other datasets that do not apply to CelebA, and why (debias.data.options.check_options).
NOT_TAKEN = {
    "seed": f"its splits are the official ones from {PARTITION_FILE} (--seed seeds the training)",
    "vae_on_all": "every CelebA image is a face, so the VAE trains on all of them (--vae-on overrides it)",
}


@register(
    "celeba",
    "CelebA aligned faces with 40 attributes (official layout under --root DIR); non-commercial research only",
    not_taken=NOT_TAKEN,
)
def load_celeba(
    root: str | Path | None = None,
    target: str = "Blond_Hair",
    groups: str | Sequence[str] | None = ("Male",),
    image_size: int = 64,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Dataset:
    """CelebA from `root` (DIR or DIR/celeba), with label = `target` attribute (1 -> 1, -1 -> 0).

    groups: attributes ("Male,Young" or a sequence) for subgroup evaluation only; they land in
        each split's `attributes` (as 0/1 ints, beside all 40 attributes) and never in training.
    image_size: side of the square images (center crop 178x178, then resize).
    limit: keep the first N images of each official split, for a quick run.
    cache_dir / workers / progress: where the decoded-image cache lives, how many decoding
        processes build it and whether a progress bar shows (see debias.data.cache).
    Every CelebA image is a face, so vae_on_all=True.
    """
    directory = find_celeba_root(root)
    attributes = read_attributes(directory / ATTR_FILE)
    partition = read_partition(directory / PARTITION_FILE)
    names = list(attributes.columns)
    target = str(target).strip()
    group_names = parse_names(groups)
    require_names([target], names, "--target attribute", ATTR_FILE)
    require_names(group_names, names, "--groups attribute", ATTR_FILE)

    table = _join(attributes, partition)
    table = pd.DataFrame(
        {
            "file": [str(directory / IMAGE_DIR / f) for f in table.index],
            "sample_id": table.index.to_numpy(dtype=str),
            "label": table[target].to_numpy(dtype=np.int64),
            "split": table["split"].to_numpy(),
        }
    ).join(table[names].reset_index(drop=True))
    return assemble_dataset(
        name="celeba",
        table=table,
        attribute_columns=names,
        group_columns=group_names,
        target=target,
        vae_on_all=True,
        image_size=image_size,
        limit=limit,
        cache_dir=cache_dir,
        workers=workers,
        progress=progress,
        key_parts=("celeba",),
        info={"root": str(directory), "target": target, "groups": group_names},
        empty_split_hint=f"Check {directory / PARTITION_FILE}: it needs rows with 0 (train), 1 (valid) and 2 (test).",
    )


def find_celeba_root(root: str | Path | None) -> Path:
    """The directory holding CelebA's files: `root` itself or `root/celeba`; UserError when neither does."""
    if root is None or str(root).strip() == "":
        raise UserError(
            "CelebA needs --root DIR, the folder holding img_align_celeba/ and list_attr_celeba.txt. " + README_HINT
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"CelebA root {root} does not exist (or is not a folder). " + README_HINT)
    for candidate in (root, root / "celeba"):
        if any((candidate / name).exists() for name in (IMAGE_DIR, ATTR_FILE, PARTITION_FILE)):
            return candidate
    raise UserError(
        f"{root} does not look like CelebA: expected {IMAGE_DIR}/, {ATTR_FILE} and {PARTITION_FILE} "
        f"in it or in {root / 'celeba'}. " + README_HINT
    )


def read_attributes(path: Path) -> pd.DataFrame:
    """list_attr_celeba.txt as a DataFrame indexed by file name, one 0/1 int8 column per attribute.

    Line 1 is the image count, line 2 the attribute names, then `file v1 ... v40` with v in {-1, 1},
    separated by runs of spaces; LF or CRLF line endings.
    """
    if not path.is_file():
        raise UserError(f"missing attribute file {path}. " + README_HINT)
    with open(path, encoding="ascii", errors="replace") as handle:  # universal newlines: CRLF is fine
        count_line = handle.readline().strip()
        names = handle.readline().split()
    if not count_line.isdigit() or not names:
        raise UserError(
            f"{path} is not in CelebA's attribute format: line 1 must be the image count, line 2 the "
            f"attribute names (got {count_line[:40]!r}). " + README_HINT
        )
    try:
        table = pd.read_csv(
            path, sep=r"\s+", skiprows=2, header=None, names=["file", *names], index_col="file", dtype={"file": str}
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise UserError(
            f"cannot parse {path}: {error}. Each line must be a file name and {len(names)} values of -1 or 1."
        ) from error
    values = table.to_numpy()
    if table.isna().to_numpy().any() or not np.isin(values, (-1, 1)).all():
        bad = table.index[~np.isin(values, (-1, 1)).all(axis=1)][0]
        raise UserError(f"{path}: the row for {bad} has values other than -1 and 1, or too few of them.")
    if len(table) != int(count_line):
        raise UserError(
            f"{path} announces {int(count_line)} images on its first line but lists {len(table)}: the file is "
            "truncated or edited. Re-download it. " + README_HINT
        )
    _require_unique(table.index, path)
    return (table == 1).astype(np.int8)


def read_partition(path: Path) -> pd.Series:
    """list_eval_partition.txt as a Series file name -> "train" / "valid" / "test" (from 0 / 1 / 2)."""
    if not path.is_file():
        raise UserError(f"missing partition file {path} (lines `file 0|1|2` for train/valid/test). " + README_HINT)
    try:
        table = pd.read_csv(
            path, sep=r"\s+", header=None, names=["file", "code"], index_col="file", dtype={"file": str}
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise UserError(f"cannot parse {path}: {error}. Each line must be a file name and 0, 1 or 2.") from error
    codes = pd.to_numeric(table["code"], errors="coerce")
    if codes.isna().any() or not codes.isin(list(PARTITION_CODES)).all():
        bad = table.index[~codes.isin(list(PARTITION_CODES))][0]
        raise UserError(f"{path}: the partition of {bad} must be 0 (train), 1 (valid) or 2 (test).")
    _require_unique(table.index, path)
    return codes.astype(int).map(PARTITION_CODES).rename("split")


def _join(attributes: pd.DataFrame, partition: pd.Series) -> pd.DataFrame:
    only_attr = attributes.index.difference(partition.index)
    only_part = partition.index.difference(attributes.index)
    for missing, present_in, absent_from in (
        (only_attr, ATTR_FILE, PARTITION_FILE),
        (only_part, PARTITION_FILE, ATTR_FILE),
    ):
        if len(missing):
            raise UserError(
                f"{len(missing)} images are listed in {present_in} but not in {absent_from} (e.g. {missing[0]}): "
                "the two files come from different copies of CelebA. " + README_HINT
            )
    table = attributes.join(partition)
    # Official order within each split (file order of the attribute file), splits as in SPLITS.
    table["_order"] = np.arange(len(table))
    table["_split_rank"] = table["split"].map({s: i for i, s in enumerate(SPLITS)})
    return table.sort_values(["_split_rank", "_order"], kind="stable").drop(columns=["_order", "_split_rank"])


def _require_unique(index: pd.Index, path: Path) -> None:
    if index.has_duplicates:
        raise UserError(f"{path} lists {index[index.duplicated()][0]} more than once. " + README_HINT)
