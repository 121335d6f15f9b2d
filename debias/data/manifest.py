"""Any labelled image collection: a CSV manifest (`--data PATH.csv`) or class subfolders (`--data DIR`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torchvision.datasets.folder import find_classes

from debias.data.base import Dataset
from debias.data.class_folders import IMAGE_EXTENSIONS, list_class_folders
from debias.data.columns import parse_names, require_names
from debias.data.options import option_flag
from debias.data.tables import assemble_dataset, seeded_split
from debias.errors import UserError

REQUIRED_COLUMNS = ("path", "label")
SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}
MANIFEST_HINT = "See data/README.md for the manifest format."

# Options of other datasets that do not apply here, and why (debias.data.options.check_options).
MANIFEST_NOT_TAKEN = {
    "target": "it takes its label from the `label` column (0/1, or two values mapped in sorted order to 0/1)",
    "root": "image paths are relative to the CSV's own folder (or absolute)",
    "path": "the manifest's path is the --data value itself",
}
FOLDER_NOT_TAKEN = {
    "target": "its label is the class subfolder (the two subfolders, sorted by name, give 0 and 1)",
    "root": "the folder is the --data value itself",
    "path": "the folder is the --data value itself",
}


def load_manifest(
    path: str | Path,
    groups: str | Sequence[str] | None = None,
    image_size: int = 64,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    vae_on_all: bool = True,
    progress: bool = True,
) -> Dataset:
    """The images listed in the CSV at `path`.

    Columns: `path` (relative to the CSV's folder, or absolute), `label` (0/1, or exactly two
    distinct values mapped in sorted order to 0/1, the mapping kept in info["label_mapping"]),
    optional `split` (train/valid/test; without it a 70/15/15 split stratified by label, seeded
    by `seed`), and any other columns, kept as evaluation attributes and usable as `groups`.
    sample_id is the `path` value relative to the CSV's folder. vae_on_all defaults to True
    since a manifest cannot say whether its negatives are faces. cache_dir, workers and progress
    go to the decoded-image cache (debias.data.cache.cached_images).
    """
    csv_path = Path(path).expanduser()
    if not csv_path.is_file():
        raise UserError(f"manifest {csv_path} does not exist. " + MANIFEST_HINT)
    try:
        frame = pd.read_csv(csv_path, dtype={"path": str, "split": str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read manifest {csv_path} as CSV: {error}. " + MANIFEST_HINT) from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"manifest {csv_path} has no {' or '.join(repr(c) for c in missing)} column (its columns: "
            f"{', '.join(frame.columns) or 'none'}). It needs `path` and `label`, optionally `split`. " + MANIFEST_HINT
        )
    if frame.empty:
        raise UserError(f"manifest {csv_path} lists no images. " + MANIFEST_HINT)
    _require_no_blanks(frame, ["path", "label"] + (["split"] if "split" in frame.columns else []), csv_path)

    base = csv_path.resolve().parent
    raw_paths = frame["path"].str.strip()
    # Normalised (`imgs/../imgs/x.jpg` is `imgs/x.jpg`) before the duplicate check, so one image
    # cannot be listed twice under two spellings and land in two splits.
    files = [Path(os.path.normpath(p if p.is_absolute() else base / p)) for p in map(Path, raw_paths)]
    sample_ids = [_relative_id(f, base) for f in files]
    _require_listed_once(sample_ids, raw_paths.tolist(), csv_path)
    labels, mapping = _binary_labels(frame["label"], f"manifest {csv_path}")

    extra = [c for c in frame.columns if c not in (*REQUIRED_COLUMNS, "split")]
    group_names = parse_names(groups)
    require_names(group_names, extra, "--groups column", f"the extra columns of {csv_path.name}")
    _require_group_values(frame, group_names, csv_path)

    if "split" in frame.columns:
        split = frame["split"].str.strip().str.lower().map(SPLIT_ALIASES)
        if split.isna().any():
            bad = frame.loc[split.isna(), "split"].iloc[0]
            raise UserError(f"manifest {csv_path}: split {bad!r} is not one of train, valid, test. " + MANIFEST_HINT)
        split_source = "split column"
    else:
        split = seeded_split(labels, seed)
        split_source = f"seeded stratified 70/15/15 (seed {seed})"

    table = pd.DataFrame(
        {"file": [str(f) for f in files], "sample_id": sample_ids, "label": labels, "split": np.asarray(split)}
    )
    table = table.join(frame[extra].reset_index(drop=True))
    return assemble_dataset(
        name=f"manifest:{csv_path.name}",
        table=table,
        attribute_columns=extra,
        group_columns=group_names,
        target=_target_name(mapping),
        vae_on_all=vae_on_all,
        image_size=image_size,
        limit=limit,
        cache_dir=cache_dir,
        workers=workers,
        progress=progress,
        key_parts=(f"manifest-{csv_path.stem}", str(csv_path.resolve())),
        info={
            "manifest": str(csv_path.resolve()),
            "label_mapping": mapping,
            "split_source": split_source,
            "groups": group_names,
        },
        empty_split_hint=(
            "Give each split some rows in the `split` column."
            if "split" in frame.columns
            else "The manifest has too few images for a 70/15/15 split; list more, or add a `split` column."
        ),
    )


def load_image_folder(
    path: str | Path,
    groups: str | Sequence[str] | None = None,
    image_size: int = 64,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    vae_on_all: bool = True,
    progress: bool = True,
) -> Dataset:
    """The images under `path`/<class>/..., as torchvision's ImageFolder reads them, with exactly two classes.

    Entries that are not images (macOS `._*` files, a text file named .jpg, other extensions,
    broken links) are skipped and counted in info["skipped_files"], and printed when `progress`
    (debias.data.class_folders); .jfif and .gif images are read too.
    Class folders sorted by name give labels 0 and 1 (info["label_mapping"]); the split is 70/15/15
    stratified by label, seeded by `seed`; sample_id is the file's path relative to `path`.
    groups: must be empty. A class folder has no attributes besides the class (the label), so
        there is nothing to group by; a UserError says to use a manifest with group columns.
    Other options as for load_manifest.
    """
    group_names = parse_names(groups)
    if group_names:
        raise UserError(
            f"{option_flag('groups', ','.join(group_names))} does not apply to a class-folder dataset ({path}): a class "
            "folder has no group attributes, only the class, which is the label. To evaluate by groups, list the "
            "images in a CSV manifest with one column per group attribute and pass it as --data. " + MANIFEST_HINT
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist. Point --data at a folder with one subfolder per class.")
    if (root / "list_attr_celeba.txt").exists() or (root / "img_align_celeba").is_dir():
        raise UserError(f"{root} looks like CelebA: use `--data celeba --root {root}` instead.")
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError as error:
        raise UserError(
            f"{root} has no class subfolders ({error}). Put the images of each class in its own subfolder."
        ) from error
    if len(classes) != 2:
        raise UserError(
            f"{root} has {len(classes)} class subfolder(s) ({', '.join(classes)}); debias needs exactly two "
            "(negative and positive). Move the others out, or list the images in a manifest CSV. " + MANIFEST_HINT
        )
    samples, skipped = list_class_folders(root, classes)
    empty = [name for k, name in enumerate(classes) if not any(label == k for _, label in samples)]
    if empty:
        stray = f"; {skipped.sentence(root)}" if skipped.count else ""
        raise UserError(
            f"class folder {root / empty[0]} holds no images{stray}. Each class folder needs images ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}."
        )
    if skipped.count and progress:
        print(f"{root}: {skipped.sentence(root)}", file=sys.stderr, flush=True)
    files = [Path(p) for p, _ in samples]
    labels = np.array([label for _, label in samples], dtype=np.int64)
    table = pd.DataFrame(
        {
            "file": [str(f) for f in files],
            "sample_id": [f.relative_to(root).as_posix() for f in files],
            "label": labels,
            "split": seeded_split(labels, seed),
            "class": [classes[i] for i in labels],
        }
    )
    mapping = {name: idx for name, idx in class_to_idx.items()}
    return assemble_dataset(
        name=f"folder:{root.name}",
        table=table,
        attribute_columns=["class"],
        group_columns=[],
        target=_target_name(mapping),
        vae_on_all=vae_on_all,
        image_size=image_size,
        limit=limit,
        cache_dir=cache_dir,
        workers=workers,
        progress=progress,
        key_parts=(f"folder-{root.name}", str(root.resolve())),
        info={
            "folder": str(root.resolve()),
            "label_mapping": mapping,
            "split_source": f"seeded stratified 70/15/15 (seed {seed})",
            "skipped_files": skipped.to_dict(),
        },
        empty_split_hint="The folder has too few images for a 70/15/15 split; add images, or use a manifest with a `split` column.",
    )


def _binary_labels(column: pd.Series, source: str) -> tuple[np.ndarray, dict]:
    """0/1 labels from a column of 0/1 (or booleans), or of exactly two distinct values mapped sorted."""
    values = column.to_numpy()
    if column.dtype == bool:
        return values.astype(np.int64), {}
    if pd.api.types.is_numeric_dtype(column):
        distinct = sorted(pd.unique(values).tolist())
        if set(distinct) <= {0, 1} and len(distinct) == 2:
            return values.astype(np.int64), {}
    else:
        column = column.astype(str).str.strip()
        distinct = sorted(pd.unique(column.to_numpy()).tolist())
        values = column.to_numpy()
    if len(distinct) == 1:
        raise UserError(f"{source}: every label is {distinct[0]!r}; debias needs two classes (0 and 1) in `label`.")
    if len(distinct) > 2:
        shown = ", ".join(repr(v) for v in distinct[:10]) + (" ..." if len(distinct) > 10 else "")
        raise UserError(
            f"{source}: `label` has {len(distinct)} distinct values ({shown}); debias needs exactly two. "
            "Map them to 0/1 (the class to study as 1) and move the rest to other columns."
        )
    mapping = {_plain(v): i for i, v in enumerate(distinct)}
    labels = np.array([mapping[_plain(v)] for v in values], dtype=np.int64)
    return labels, mapping


def _target_name(mapping: dict) -> str:
    # With text labels the positive class has a name of its own, e.g. "smiling".
    positives = [name for name, idx in mapping.items() if idx == 1 and isinstance(name, str)]
    return positives[0] if positives else "label"


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _relative_id(file: Path, base: Path) -> str:
    try:
        return file.relative_to(base).as_posix()
    except ValueError:
        return file.as_posix()


def _require_no_blanks(frame: pd.DataFrame, columns: list[str], csv_path: Path) -> None:
    for column in columns:
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            # +2: one for the header line, one because people count lines from 1.
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(blank)[:5])
            raise UserError(f"manifest {csv_path}: empty `{column}` on line(s) {rows}. " + MANIFEST_HINT)


def _require_group_values(frame: pd.DataFrame, columns: list[str], csv_path: Path) -> None:
    """UserError for a --groups column with blank cells: a row without a group cannot be evaluated by group.

    Blanks are not turned into a group of their own: a group debias invented could become the
    worst group and decide the headline. The user chooses (a value of their own, or fewer rows).
    """
    for column in columns:
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            rows = np.flatnonzero(blank)
            shown = ", ".join(str(i + 2) for i in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise UserError(
                f"manifest {csv_path}: the --groups column `{column}` is empty on {len(rows)} of {len(frame)} rows "
                f"(line(s) {shown}). Every row needs a group value: fill the blanks with a value of their own (such "
                "as `unknown`, then evaluated as a group like the others) or remove those rows. " + MANIFEST_HINT
            )


def _require_listed_once(ids: list[str], raw_paths: list[str], csv_path: Path) -> None:
    first_line: dict[str, int] = {}
    for i, sample_id in enumerate(ids):
        if sample_id in first_line:
            j = first_line[sample_id]
            # +2: one for the header line, one because people count lines from 1.
            spelled = f" (as {raw_paths[j]!r} and {raw_paths[i]!r})" if raw_paths[j] != raw_paths[i] else ""
            raise UserError(
                f"manifest {csv_path} lists the image {sample_id!r} more than once, on lines {j + 2} and {i + 2}{spelled}; "
                "each image once, please: an image listed twice can land in two splits."
            )
        first_line[sample_id] = i
