"""Tiny datasets in the real on-disk formats, written by tests (and the CLI test) into a temporary folder.

Every image is a flat colour (its own, from `image_color`) with bands of another colour at top
and bottom, exactly what a center crop to the short side removes (20 pixels each for CelebA's
178x218), so a test can tell which file an array row came from and that the crop was right.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
BAND_COLOR = (255, 0, 255)


def image_color(i: int) -> tuple[int, int, int]:
    """The flat colour of fake image number `i`: distinct for i < 64, far from BAND_COLOR."""
    return (40 + 50 * (i % 4), 40 + 50 * ((i // 4) % 4), 40 + 50 * ((i // 16) % 4))


def write_jpeg(path: Path, color: tuple[int, int, int], width: int = 178, height: int = 218) -> Path:
    """A real JPEG of `width` x `height`: flat `color`, with BAND_COLOR bands top and bottom when taller than wide."""
    band = max(0, (height - width) // 2)
    image = torch.empty(3, height, width, dtype=torch.uint8)
    image[:] = torch.tensor(color, dtype=torch.uint8)[:, None, None]
    if band:
        image[:, :band] = torch.tensor(BAND_COLOR, dtype=torch.uint8)[:, None, None]
        image[:, height - band :] = torch.tensor(BAND_COLOR, dtype=torch.uint8)[:, None, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(image, quality=95).numpy().tobytes())
    return path


def fake_celeba_table(n: int = 30, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(file names, attributes [n, 40] in {-1, 1}, partition codes [n]) of the fake CelebA.

    Partition: the first 60% train (0), the next 20% valid (1), the rest test (2). Blond_Hair and
    Male alternate so that every split has both values of each.
    """
    rng = np.random.default_rng(seed)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    attributes = rng.choice(np.array([-1, 1]), size=(n, len(CELEBA_ATTRIBUTES)))
    attributes[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] = np.where(np.arange(n) % 2 == 0, 1, -1)
    attributes[:, CELEBA_ATTRIBUTES.index("Male")] = np.where((np.arange(n) // 2) % 2 == 0, 1, -1)
    n_train, n_valid = int(0.6 * n), int(0.2 * n)
    partition = np.array([0] * n_train + [1] * n_valid + [2] * (n - n_train - n_valid))
    return files, attributes, partition


def make_fake_celeba(
    root: Path, n: int = 30, seed: int = 0, newline: str = "\r\n", subdir: str = "", columns: dict | None = None
) -> Path:
    """Write a fake CelebA under `root` (or `root/subdir`) in the official formats; return that folder.

    img_align_celeba/ holds `n` real 178x218 JPEGs; list_attr_celeba.txt has the count line, the
    attribute-name line (with the official trailing space) and `file -1  1 ...` rows;
    list_eval_partition.txt has `file 0|1|2`. Lines end with `newline` (CRLF by default, as some
    copies have). The contents come from fake_celeba_table(n, seed), with the attributes named in
    `columns` (name -> [n] values in {-1, 1}) replaced.
    """
    folder = Path(root) / subdir if subdir else Path(root)
    files, attributes, partition = fake_celeba_table(n, seed)
    for name, values in (columns or {}).items():
        attributes[:, CELEBA_ATTRIBUTES.index(name)] = values
    for i, name in enumerate(files):
        write_jpeg(folder / "img_align_celeba" / name, image_color(i))
    attr_lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    attr_lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(files, attributes)]
    (folder / "list_attr_celeba.txt").write_bytes((newline.join(attr_lines) + newline).encode())
    part_lines = [f"{name} {code}" for name, code in zip(files, partition)]
    (folder / "list_eval_partition.txt").write_bytes((newline.join(part_lines) + newline).encode())
    return folder


def make_manifest(
    root: Path,
    n: int = 40,
    labels: tuple = ("cat", "dog"),
    with_split: bool = True,
    name: str = "manifest.csv",
    image_dir: str = "images",
) -> Path:
    """Write `n` JPEGs under root/image_dir and root/name listing them; return the CSV's path.

    Columns: path (relative), label (alternating `labels`), split (when `with_split`: the first 60%
    train, 20% valid, 20% test) and two group columns, `tone` ("light"/"dark") and `age` (ints).
    Image i has colour image_color(i).
    """
    root = Path(root)
    rows = []
    n_train, n_valid = int(0.6 * n), int(0.2 * n)
    for i in range(n):
        rel = f"{image_dir}/img_{i:03d}.jpg"
        write_jpeg(root / rel, image_color(i), width=48, height=64)
        row = {"path": rel, "label": labels[i % len(labels)], "tone": "dark" if i % 3 == 0 else "light", "age": 20 + i}
        if with_split:
            row["split"] = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
        rows.append(row)
    return write_csv(root / name, rows)


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write `rows` (dicts with the same keys) as a CSV at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_image_folder(root: Path, classes: tuple[str, ...] = ("no_face", "face"), per_class: int = 20) -> Path:
    """Write `per_class` JPEGs into root/<class>/ for each class (ImageFolder layout); return `root`.

    Class k's image j is root/<class>/<j>.jpg with colour image_color(k * per_class + j).
    """
    root = Path(root)
    for k, name in enumerate(classes):
        for j in range(per_class):
            write_jpeg(root / name / f"{j:03d}.jpg", image_color(k * per_class + j), width=40, height=40)
    return root
