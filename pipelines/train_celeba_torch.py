"""A plain PyTorch training script for CelebA, standing in for "your own pipeline".

It has its own Dataset (reads CelebA's text files and JPEGs with torchvision.io) and its own model
and loop; the only thing it takes from debias is the sampler built from a weights.csv:

    python pipelines/train_celeba_torch.py --root ~/data/celeba --target Blond_Hair            # uniform
    python pipelines/train_celeba_torch.py --root ~/data/celeba --target Blond_Hair \\
        --weights runs/celeba/weights.csv                                                      # reweighted

Use the same --limit as the `debias fit` that wrote the weights: both keep the first N images of
each split in the official order, so the ids match (or --allow-extra, to train on fewer images
than the weights cover). Prints test accuracy overall and per
(target, --group) cell, and the worst cell.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as TF

from debias.errors import UserError
from debias.weight_files import SampleWeights

SPLIT_CODES = {"train": "0", "valid": "1", "test": "2"}


def read_celeba_tables(root: Path) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """(attribute names, file -> attribute values as '-1'/'1', file -> partition code) from CelebA's text files."""
    with open(root / "list_attr_celeba.txt") as handle:  # universal newlines: CRLF copies work too
        handle.readline()  # image count
        names = handle.readline().split()
        attributes = {parts[0]: parts[1:] for parts in (line.split() for line in handle) if parts}
    with open(root / "list_eval_partition.txt") as handle:
        partition = {parts[0]: parts[1] for parts in (line.split() for line in handle) if parts}
    return names, attributes, partition


class CelebAFolder(Dataset):
    """One split of a CelebA folder: (image float [3, S, S] in [0, 1], label, group) per item.

    `ids` are the file names in the attribute file's order (the sample ids of a debias weights.csv).
    """

    def __init__(
        self, root: str | Path, split: str, target: str, group: str, image_size: int, limit: int | None = None
    ):
        root = Path(root).expanduser()
        if not (root / "list_attr_celeba.txt").is_file() and (root / "celeba" / "list_attr_celeba.txt").is_file():
            root = root / "celeba"
        for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"):
            if not (root / name).exists():
                raise UserError(f"{root} is not a CelebA folder: {name} is missing")
        names, attributes, partition = read_celeba_tables(root)
        for name in (target, group):
            if name not in names:
                raise UserError(f"unknown attribute {name!r}; list_attr_celeba.txt has {', '.join(names)}")
        files = [f for f in attributes if partition.get(f) == SPLIT_CODES[split]]
        self.ids = files[:limit] if limit else files
        self.labels = [int(attributes[f][names.index(target)] == "1") for f in self.ids]
        self.groups = [int(attributes[f][names.index(group)] == "1") for f in self.ids]
        self.image_dir, self.image_size = root / "img_align_celeba", image_size

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        image = decode_image(read_file(str(self.image_dir / self.ids[i])), mode=ImageReadMode.RGB)
        side = min(image.shape[-2:])
        image = TF.center_crop(image, [side, side])  # 178x218 -> 178x178: the face, without the bands
        image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        return image.float() / 255, self.labels[i], self.groups[i]


def small_cnn(width: int = 32) -> nn.Module:
    """Four stride-2 conv blocks, global average pooling and one logit."""
    layers, channels = [], 3
    for k in range(4):
        out = width * 2 ** min(k, 2)
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1))


def train_one_epoch(model, optimizer, loader, device) -> float:
    """One pass over `loader`; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    for images, labels, _ in loader:
        images, labels = images.to(device), labels.float().to(device)
        loss = F.binary_cross_entropy_with_logits(model(images).squeeze(1), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(labels), count + len(labels)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model, loader, device) -> dict[tuple[int, int], tuple[int, int]]:
    """(label, group) -> (correct, total) on `loader`."""
    model.eval()
    cells: dict[tuple[int, int], list[int]] = {}
    for images, labels, groups in loader:
        pred = (model(images.to(device)).squeeze(1) > 0).long().cpu()
        for p, y, g in zip(pred.tolist(), labels.tolist(), groups.tolist()):
            cell = cells.setdefault((y, g), [0, 0])
            cell[0] += int(p == y)
            cell[1] += 1
    return {k: (c, n) for k, (c, n) in sorted(cells.items())}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, print test accuracy; a UserError becomes one message and exit code 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", required=True, help="CelebA folder (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt)"
    )
    parser.add_argument("--target", default="Blond_Hair", help="attribute to predict")
    parser.add_argument("--group", default="Male", help="attribute to report accuracy by")
    parser.add_argument("--weights", default=None, help="a debias weights.csv: draw training images by weight")
    parser.add_argument(
        "--allow-extra",
        action="store_true",
        help="accept a weights file with rows for more images than this training split (a larger run's)",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """The training run described by the parsed `args`."""
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = CelebAFolder(args.root, "train", args.target, args.group, args.image_size, args.limit)
    test = CelebAFolder(args.root, "test", args.target, args.group, args.image_size, args.limit)
    if args.weights:
        weights = SampleWeights.load(args.weights)
        sampler = weights.to_sampler(train.ids, seed=args.seed, allow_extra=args.allow_extra)
        w = weights.align(train.ids, allow_extra=args.allow_extra)
        print(
            f"train sampler: weighted by {args.weights} ({len(w)} rows, ESS {w.sum() ** 2 / (len(w) * (w**2).sum()):.3f} of N)"
        )
    else:
        sampler = None
        print("train sampler: uniform (shuffle)")
    loader_options = dict(batch_size=args.batch_size, num_workers=args.workers, persistent_workers=args.workers > 0)
    train_loader = DataLoader(
        train, sampler=sampler, shuffle=sampler is None, drop_last=len(train) > args.batch_size, **loader_options
    )
    test_loader = DataLoader(test, shuffle=False, **loader_options)

    model = small_cnn().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss = train_one_epoch(model, optimizer, train_loader, device)
        print(f"epoch {epoch}: train loss {loss:.4f} ({time.perf_counter() - start:.1f} s)")

    cells = evaluate(model, test_loader, device)
    correct, total = sum(c for c, _ in cells.values()), sum(n for _, n in cells.values())
    print(f"test accuracy {correct / total:.4f} ({total} images)")
    for (label, group), (c, n) in cells.items():
        print(f"  {args.target}={label} {args.group}={group}: {c / n:.4f} ({n} images)")
    worst = min(cells.items(), key=lambda item: item[1][0] / item[1][1])
    print(
        f"worst-group accuracy {worst[1][0] / worst[1][1]:.4f} ({args.target}={worst[0][0]} {args.group}={worst[0][1]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
