"""The per-epoch encoding pass (mu of every training image): debias.train.encode_all against what a user would write.

Question (issue 5, items 2 and 5). How many images per second does debias.train.encode_all
process (the pass that computes the latent means mu of every training image at each DB-VAE
epoch: eval mode inside torch.inference_mode, `debias fit`'s eval batch of 512, reading the
memory-mapped uint8 cache built by debias.data.cache), and does it copy the dataset? The
same DBVAE (latent 100, 64x64, fit's default width 16, channels-last as fit builds it) encodes
the same images in every row; encode_all runs at fit's eval batch (512) and at 128 (a candidate
change of the default on CPU, measured here without touching the package). References, timed in
the same rounds (debias, reference A, reference B, debias, ...):

  A  what a user would otherwise write: a torch DataLoader over a Dataset that decodes each JPEG
     with PIL every time, center-crops to the short side, resizes to 64 and returns a float
     tensor (ToTensor), batch 128, the model left in train mode and autograd on (the public
     course code encodes in train mode with eager gradients);
  B  the course's latent pass without JPEGs: the decoded images copied once into one float32
     tensor (torch.from_numpy(images).float(), as the lab's PyTorch port does), batch 128, train
     mode, autograd on. It isolates the data path from inference mode and the batch size.

Then, each in a fresh process, the memory each pass adds: peak resident memory above the level
after the model is built and warmed up, split into anonymous memory (what a copy of the dataset
would take) and file-backed pages (the memory map's page cache, shared and reclaimable, not a
copy), for debias at two dataset sizes (and each further eval batch at the larger one) and
reference B at the larger one. The larger dataset is the cache tiled to --rss-images rows into a
.npy next to it.

Target: encode_all is faster than both references and its memory does not grow with the dataset.

    python benchmarks/encode.py --root DIR                       # a CelebA folder (BENCHMARKS.md: a 4,559-JPEG sample)
    python benchmarks/encode.py --root DIR --threads 1
    python benchmarks/encode.py --root /data/celeba --limit 20000
    python benchmarks/encode.py --synthetic 2000                 # no CelebA: synthetic 178x218 JPEGs
    python benchmarks/encode.py --synthetic 2000 --quick         # smoke run: seconds

Results and the machine they were measured on: BENCHMARKS.md, "Encoding pass".
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from machine import machine_line, timed
from PIL import Image
from torchvision.transforms import functional as TF

from debias.data.cache import cached_images
from debias.models.networks import DBVAE
from debias.train import encode_all

# torch.from_numpy on the read-only memmap warns that writes would be undefined; nothing here writes.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


# ------------------------------------------------------------------------------------------ data


def synthetic_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n 178x218 JPEGs (smooth random colour fields, so they compress like photos) in CelebA's naming."""
    from torchvision.io import encode_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i + 1:06d}.jpg"
        if not path.exists():
            low = torch.rand(1, 3, 14, 11, generator=g)
            image = torch.nn.functional.interpolate(low, size=(218, 178), mode="bicubic", align_corners=False)
            image = (image.clamp(0, 1)[0] * 255).to(torch.uint8)
            path.write_bytes(encode_jpeg(image, quality=90).numpy().tobytes())
        paths.append(path)
    return paths


def image_paths(args) -> list[Path]:
    if args.synthetic:
        return synthetic_jpegs(Path(args.cache_dir) / f"synthetic-jpegs-{args.synthetic}", args.synthetic)
    if args.root is None:
        sys.exit("pass --root DIR (a CelebA folder, official layout) or --synthetic N")
    folder = Path(args.root) / "img_align_celeba"
    if not folder.is_dir():
        sys.exit(f"{folder} not found: pass --root DIR (CelebA layout) or --synthetic N")
    paths = sorted(folder.glob("*.jpg"))
    return paths[: args.limit] if args.limit else paths


def tiled_memmap(images: np.ndarray, rows: int, folder: Path) -> np.ndarray:
    """A read-only .npy memmap of `rows` images: `images` repeated (written once, then reused)."""
    path = folder / f"tiled-{len(images)}x{images.shape[1]}-{rows}.npy"
    if not path.exists():
        partial = path.with_suffix(f".partial-{os.getpid()}.npy")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(rows, *images.shape[1:]))
        for start in range(0, rows, len(images)):
            stop = min(rows, start + len(images))
            out[start:stop] = images[: stop - start]
        out.flush()
        del out
        os.replace(partial, path)
    return np.load(path, mmap_mode="r")


class JpegFloatDataset(torch.utils.data.Dataset):
    """Reference A's dataset: decode the JPEG with PIL at every access, short-side center crop, resize, ToTensor."""

    def __init__(self, paths, image_size: int):
        self.paths, self.image_size = [str(p) for p in paths], image_size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            img = img.convert("RGB")
        img = TF.center_crop(img, min(img.size))
        img = TF.resize(img, [self.image_size, self.image_size], antialias=True)
        return TF.to_tensor(img), 0


# ---------------------------------------------------------------------------------------- passes


def encode_reference_loader(model, loader) -> torch.Tensor:
    """Reference A: train mode, autograd on (the model as a training loop leaves it)."""
    chunks = []
    for x, _ in loader:
        _, mu, _ = model.encode(x.contiguous(memory_format=torch.channels_last))
        chunks.append(mu.detach())
    return torch.cat(chunks)


def encode_reference_float_copy(model, images: np.ndarray, batch_size: int) -> torch.Tensor:
    """Reference B: the whole dataset copied to float32 once, then train-mode batches with autograd on."""
    data = torch.from_numpy(np.asarray(images)).float().div_(255.0).permute(0, 3, 1, 2)  # the copy: 4 bytes per pixel
    chunks = []
    for start in range(0, len(data), batch_size):
        _, mu, _ = model.encode(data[start : start + batch_size])
        chunks.append(mu.detach())
    return torch.cat(chunks)


def make_model(width: int, latent: int, image_size: int) -> DBVAE:
    torch.manual_seed(0)
    return DBVAE(latent, image_size, width).to(memory_format=torch.channels_last).train()


# ------------------------------------------------------------------------------------------ memory


def _status_kib(fields=("VmRSS", "RssAnon", "RssFile", "VmHWM")) -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in fields:
                out[key] = int(line.split()[1])
    return out


class PeakSampler:
    """Samples /proc/self/status every `interval` s in a thread; keeps the peaks (torch ops release the GIL)."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, _status_kib(), threading.Event()

    def _run(self):
        while not self._stop.is_set():
            for key, value in _status_kib().items():
                self.peak[key] = max(self.peak.get(key, 0), value)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for key, value in _status_kib().items():
            self.peak[key] = max(self.peak.get(key, 0), value)


def rss_child(args) -> None:
    """Runs in a fresh process: one pass over a memmap, printing the memory it added as JSON."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    images = np.load(args.rss_child_array, mmap_mode="r")
    model = make_model(args.width, args.latent, images.shape[1])
    # Warm up on a few rows (allocator, oneDNN primitives) so the baseline includes the fixed costs.
    if args.rss_child == "debias":
        encode_all(model, images[: args.eval_batch], args.eval_batch, torch.device("cpu"))
    else:
        encode_reference_float_copy(model, images[: args.batch], args.batch)
    base = _status_kib()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        if args.rss_child == "debias":
            mu = encode_all(model, images, args.eval_batch, torch.device("cpu"))
        else:
            mu = encode_reference_float_copy(model, images, args.batch)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "rows": len(images),
                "array_mib": images.nbytes / 2**20,
                "seconds": seconds,
                "mu_mib": mu.nbytes / 2**20,
                "base": base,
                "peak": sampler.peak,
                "hwm_growth_mib": (_status_kib()["VmHWM"] - base["VmHWM"]) / 1024,
            }
        )
    )


def measure_memory(args, which: str, array_path: Path, eval_batch: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--rss-child",
        which,
        "--rss-child-array",
        str(array_path),
        "--width",
        str(args.width),
        "--latent",
        str(args.latent),
        "--batch",
        str(args.batch),
        "--eval-batch",
        str(eval_batch),
    ]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    """Time encode_all against both references, alternating, then measure memory in child processes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a CelebA folder (official layout: img_align_celeba/*.jpg); or --synthetic N")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--synthetic", type=int, default=0, help="use N synthetic JPEGs instead of --root")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("DEBIAS_BENCH_CACHE", "/tmp/debias-bench-cache"),
        help="where the decoded-image cache (and tiled arrays) are kept between runs",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument(
        "--eval-batches",
        default="512,128",
        help="encode_all batch sizes, one row each; the first is fit's default (FitConfig.eval_batch_size)",
    )
    parser.add_argument("--eval-batch", type=int, default=512, help=argparse.SUPPRESS)  # the memory child's batch
    parser.add_argument("--batch", type=int, default=128, help="the references' batch")
    parser.add_argument("--ref-workers", type=int, default=0, help="reference A's DataLoader num_workers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument(
        "--rss-images", type=int, default=40_000, help="rows of the larger memmap for the memory test (0: skip)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 images, 1 round, 2,048-row memory test")
    parser.add_argument("--rss-child", choices=("debias", "float-copy"), help=argparse.SUPPRESS)
    parser.add_argument("--rss-child-array", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    if args.quick:
        args.limit, args.rounds, args.rss_images = args.limit or 256, 1, min(args.rss_images, 2048)
        if args.synthetic:
            args.synthetic = min(args.synthetic, 256)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    paths = image_paths(args)
    cache_dir = Path(args.cache_dir)
    build_s, images = timed(
        lambda: cached_images(paths, args.image_size, ("bench-celeba",), cache_dir=cache_dir, progress=False)
    )
    n = len(images)
    device = torch.device("cpu")

    ours_model = make_model(args.width, args.latent, args.image_size)
    ref_model = copy.deepcopy(ours_model)  # the references' train-mode passes update batch-norm statistics
    loader = torch.utils.data.DataLoader(
        JpegFloatDataset(paths, args.image_size),
        batch_size=args.batch,
        shuffle=False,
        num_workers=args.ref_workers,
        persistent_workers=args.ref_workers > 0,
    )

    eval_batches = [int(b) for b in args.eval_batches.split(",") if b.strip()]
    runs = {}
    for b in eval_batches:
        runs["debias encode_all (memmap, eval, inference_mode, batch %d)" % b] = lambda b=b: encode_all(
            ours_model, images, b, device
        )
    runs.update(
        {
            "A: DataLoader, PIL JPEG -> float per image, train mode + autograd, batch %d, workers %d"
            % (args.batch, args.ref_workers): lambda: encode_reference_loader(ref_model, loader),
            "B: float32 copy of the decoded array, train mode + autograd, batch %d" % args.batch: lambda: (
                encode_reference_float_copy(ref_model, images, args.batch)
            ),
        }
    )
    names = list(runs)
    load_before = os.getloadavg()
    for fn in runs.values():  # warm-up: page cache, allocator, oneDNN primitives, worker start
        fn()
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            seconds, mu = timed(runs[name])
            assert mu.shape == (n, args.latent)
            times[name].append(seconds)
    load_after = os.getloadavg()

    print(machine_line(load_before, load_after))
    source = f"{args.synthetic} synthetic JPEGs" if args.synthetic else f"{n} JPEGs from {args.root}"
    print(
        f"{source}; cache {images.shape} uint8 memmap ({images.nbytes / 2**20:.1f} MiB), "
        f"{'built in %.1f s' % build_s if build_s > 1 else 'read from ' + str(cache_dir)}; "
        f"DBVAE width {args.width}, latent {args.latent}, channels-last; {args.rounds} rounds after one warm-up pass each"
    )
    print(f"{'pass':<92}{'img/s median':>13}{'(min-max)':>18}{'s/pass':>8}{'vs A':>10}")
    a_median = statistics.median(times[names[len(eval_batches)]])
    for name in names:
        ips = [n / t for t in times[name]]
        med = statistics.median(times[name])
        print(f"{name:<92}{n / med:>13.0f}{f'({min(ips):.0f}-{max(ips):.0f})':>18}{med:>8.2f}{a_median / med:>9.2f}x")
    for ours in names[: len(eval_batches)]:
        for ref in names[len(eval_batches) :]:
            rr = [b / a for a, b in zip(times[ours], times[ref])]
            print(
                f"  per-round speed-up of encode_all batch {ours.rsplit(' ', 1)[-1].rstrip(')')} over {ref[:2].strip(':')}: "
                f"median {statistics.median(rr):.2f}x ({min(rr):.2f}-{max(rr):.2f})"
            )

    if args.rss_images:
        small = cache_dir / f"encode-bench-cache-{n}.npy"
        if not small.exists():
            np.save(small, np.asarray(images))
        big_array = tiled_memmap(images, args.rss_images, cache_dir)
        big = Path(big_array.filename)
        del big_array
        print(
            "memory added by one pass, each in a fresh process (MiB; peak above the level after model build and warm-up):"
        )
        print(
            f"{'pass':<44}{'rows':>8}{'array':>9}{'anon peak':>11}{'file peak':>11}{'RSS peak':>10}{'VmHWM':>8}{'img/s':>8}"
        )
        cases = [("debias", small, eval_batches[0]), ("debias", big, eval_batches[0])]
        cases += [("debias", big, b) for b in eval_batches[1:]] + [("float-copy", big, args.batch)]
        for which, path, batch in cases:
            m = measure_memory(args, which, path, batch)
            grow = {k: (m["peak"][k] - m["base"][k]) / 1024 for k in ("RssAnon", "RssFile", "VmRSS")}
            label = (
                f"debias encode_all, batch {batch}"
                if which == "debias"
                else f"B: float32 copy, train mode, batch {batch}"
            )
            print(
                f"{label:<44}{m['rows']:>8}{m['array_mib']:>9.0f}{grow['RssAnon']:>11.0f}{grow['RssFile']:>11.0f}"
                f"{grow['VmRSS']:>10.0f}{m['hwm_growth_mib']:>8.0f}{m['rows'] / m['seconds']:>8.0f}"
            )
        print(
            "(sampled every 2 ms. anon: private memory, what a copy takes; file: pages of the memory map, i.e. the "
            "shared page cache; VmHWM: the kernel's peak-RSS counter, growth above its level before the pass; "
            "mu itself is rows x latent x 4 bytes)"
        )


if __name__ == "__main__":
    main()
