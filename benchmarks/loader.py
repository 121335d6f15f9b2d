"""Training batches: debias's memory-mapped uint8 path against torchvision's ImageFolder + DataLoader over JPEGs.

Question (issue 5, item 5; issue 3's "data kept as uint8 until it is on the device"). How many
training images per second does each way of drawing weighted training batches deliver, as model
input (float [B, 3, 64, 64] in [0, 1]), on the same images?

  debias iterate_batches   what `debias fit` does for the DB-VAE: rows drawn by
                           debias.sampling.weighted_indices, debias.train.iterate_batches over the
                           uint8 memmap built by debias.data.cache (sorted rows per batch), then
                           debias.models.to_model_input
  debias sampler path      what fit's `sampler` model and a user's pipeline over the cache do:
                           DataLoader(UInt8ImageDataset over the memmap, WeightedRandomSampler), then
                           to_model_input
  reference, workers 0/2   torchvision.datasets.ImageFolder over the JPEGs (PIL decode, short-side
                           center crop, resize to 64 with antialiasing, ToTensor) in a DataLoader with
                           WeightedRandomSampler, num_workers 0 and 2 (persistent workers, so
                           their start-up is not counted)

Every loader draws one epoch (as many draws as images, batch 128, the same weights) per round;
rounds alternate the loaders; medians over rounds. The decoded-image cache is built once (its
build time is printed when this run built it) and reused by later runs. The script also checks
that both paths give the same pixels up to resizing differences (torchvision's tensor resize vs
PIL's).

Target: the debias path faster than the JPEG reference with as many workers as cores.

    python benchmarks/loader.py --root DIR                # a CelebA folder (BENCHMARKS.md: a 4,559-JPEG sample)
    python benchmarks/loader.py --root DIR --threads 1
    python benchmarks/loader.py --root DIR --workers 0,2,4
    python benchmarks/loader.py --root DIR --quick        # smoke run: seconds

Results and the machine they were measured on: BENCHMARKS.md, "Training batches".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from machine import machine_line
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.transforms import functional as TF

from debias.data.cache import cached_images
from debias.models import to_model_input
from debias.sampling import epoch_generator, weighted_indices
from debias.train import UInt8ImageDataset, iterate_batches

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


class ShortSideCropResizeToTensor:
    """PIL image -> float [3, S, S]: center crop to the short side, resize with antialiasing, ToTensor."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = TF.center_crop(img, min(img.size))
        return TF.to_tensor(TF.resize(img, [self.size, self.size], antialias=True))


def image_folder_root(paths: list[Path], folder: Path) -> Path:
    """ImageFolder needs class subfolders: one class folder of symbolic links to the JPEGs."""
    digest = hashlib.sha256("\n".join(str(p.resolve()) for p in paths).encode()).hexdigest()[:12]
    root = folder / f"imagefolder-{len(paths)}-{digest}"
    cls = root / "face"
    if not cls.is_dir():
        cls.mkdir(parents=True)
        for p in paths:
            (cls / p.name).symlink_to(p.resolve())
    return root


def main() -> None:
    """Time each loader over one weighted epoch per round, alternating, and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="a CelebA folder (official layout: img_align_celeba/*.jpg)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("DEBIAS_BENCH_CACHE", "/tmp/debias-bench-cache"),
        help="where the decoded-image cache and the ImageFolder links are kept between runs",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", default="0,2", help="reference DataLoader num_workers values, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 512 images, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.rounds = args.limit or 512, 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    folder = Path(args.root) / "img_align_celeba"
    if not folder.is_dir():
        sys.exit(f"{folder} not found: pass --root DIR (CelebA layout)")
    paths = sorted(folder.glob("*.jpg"))[: args.limit] if args.limit else sorted(folder.glob("*.jpg"))
    cache_dir = Path(args.cache_dir)
    start = time.perf_counter()
    # The same key as benchmarks/encode.py, so the two scripts share one cache.
    images = cached_images(paths, args.image_size, ("bench-celeba",), cache_dir=cache_dir, progress=False)
    build_s = time.perf_counter() - start
    n = len(images)
    labels = np.zeros(n, dtype=np.int64)
    g = torch.Generator().manual_seed(0)
    weights = torch.exp(torch.randn(n, generator=g, dtype=torch.float64))  # log-normal: a spread like fit's weights
    device = torch.device("cpu")

    dataset = ImageFolder(
        str(image_folder_root(paths, cache_dir)), transform=ShortSideCropResizeToTensor(args.image_size)
    )
    assert [Path(p).name for p, _ in dataset.samples] == [p.name for p in paths], (
        "ImageFolder order must match the cache rows"
    )

    def debias_iterate(epoch):
        indices = weighted_indices(weights, n, epoch_generator(0, epoch))
        seen = 0
        for x_uint8, _ in iterate_batches(images, labels, indices.numpy(), args.batch, device):
            x = to_model_input(x_uint8)
            seen += len(x)
        return seen

    def debias_sampler(epoch):
        sampler = torch.utils.data.WeightedRandomSampler(
            weights, n, replacement=True, generator=epoch_generator(0, epoch)
        )
        seen = 0
        for x_uint8, _ in torch.utils.data.DataLoader(
            UInt8ImageDataset(images, labels), batch_size=args.batch, sampler=sampler
        ):
            x = to_model_input(x_uint8)
            seen += len(x)
        return seen

    def reference(workers):
        loader_holder = {}

        def run(epoch):
            sampler = torch.utils.data.WeightedRandomSampler(
                weights, n, replacement=True, generator=epoch_generator(0, epoch)
            )
            if workers == 0 or "loader" not in loader_holder:
                loader_holder["loader"] = torch.utils.data.DataLoader(
                    dataset, batch_size=args.batch, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
                )
            else:
                loader_holder["loader"].sampler.generator = epoch_generator(0, epoch)
            seen = 0
            for x, _ in loader_holder["loader"]:
                seen += len(x)
            return seen

        return run

    runs = {
        "debias iterate_batches (memmap uint8, fit's DB-VAE path)": debias_iterate,
        "debias sampler path (DataLoader over memmap, uint8)": debias_sampler,
    }
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    for w in worker_counts:
        runs[f"reference: ImageFolder + PIL + DataLoader, workers {w}"] = reference(w)
    names = list(runs)

    load_before = os.getloadavg()
    for name in names:  # warm-up epoch: page cache, worker start-up
        runs[name](-1)
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            start = time.perf_counter()
            seen = runs[name](r)
            times[name].append(time.perf_counter() - start)
            assert seen == n
    load_after = os.getloadavg()

    # Same pixels? The first 32 rows both ways (tensor resize in the cache vs PIL resize here).
    cached = to_model_input(torch.from_numpy(np.asarray(images[:32])))
    pil = torch.stack([dataset[i][0] for i in range(32)])
    diff = (cached - pil).abs()

    print(machine_line(load_before, load_after))
    print(
        f"{n} JPEGs from {args.root} ({sum(p.stat().st_size for p in paths) / 2**20:.0f} MiB); cache {images.shape} uint8 memmap "
        f"({images.nbytes / 2**20:.0f} MiB), {'built in %.1f s' % build_s if build_s > 1 else 'read from ' + str(cache_dir)}; "
        f"batch {args.batch}; one weighted epoch ({n} draws) per loader per round, {args.rounds} rounds after a warm-up epoch"
    )
    ref_median = min(statistics.median(times[name]) for name in names[2:]) if names[2:] else float("nan")
    print(f"{'loader':<58}{'img/s median':>13}{'(min-max)':>20}{'batches/s':>11}{'vs fastest reference':>22}")
    for name in names:
        ips = [n / t for t in times[name]]
        med = statistics.median(times[name])
        print(
            f"{name:<58}{n / med:>13.0f}{f'({min(ips):.0f}-{max(ips):.0f})':>20}{n / med / args.batch:>11.1f}{ref_median / med:>21.1f}x"
        )
    for ref in names[2:]:
        rr = [b / a for a, b in zip(times[names[0]], times[ref])]
        print(
            f"  per-round speed-up of debias iterate_batches over {ref.split(', ')[-1]}: median {statistics.median(rr):.1f}x "
            f"({min(rr):.1f}-{max(rr):.1f})"
        )
    print(
        f"same images: mean |cache - PIL pipeline| = {diff.mean():.4f}, max {diff.max():.3f} (pixel values in [0, 1])"
    )


if __name__ == "__main__":
    main()
