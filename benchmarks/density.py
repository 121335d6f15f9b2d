"""Histogram density at scale, and what it weighs in the whole weight refresh (encode + density).

Question (issue 12, item 5). Each DB-VAE epoch refreshes the weights: debias.train.encode_all
computes the latent means of every training image, then debias.weighting.histogram turns them
into log-weights. Does a faster density implementation make that refresh measurably faster?
Timed in one run, in interleaved rounds (each round times every implementation and combination
once, then the encoding pass once, so all see the same load on a shared machine); medians:

- the density of --rows x --dims float32 latents (standard normal, a quarter of the dimensions
  cubed) with this checkout's debias.weighting.histogram, with the module as it was at git revision
  --compare (loaded from `git show REV:debias/weighting/histogram.py` at run time), and optionally
  with the public course's per-dimension numpy loop (--course-loop: np.histogram with the outer
  edges opened to infinity, np.digitize, 1 / (density + alpha));
- encode_all of a DBVAE (latent --dims, 64x64, width 16, channels-last as fit builds it) over
  --encode-images random uint8 images at fit's eval batch of 512, extrapolated linearly to
  --refresh-images images (the encode pass is a loop of equal batches, so time is linear in N).

Each implementation is also checked against a plain float64 numpy implementation of the formula.

    python benchmarks/density.py --threads 1 --compare 7987934 --course-loop    # the BENCHMARKS.md run
    python benchmarks/density.py --rows 200000 --encode-images 2000 --repeats 2  # quick

Results and the machine they were measured on: BENCHMARKS.md, "Density at scale".
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from machine import machine_line, timed

from debias.models.networks import DBVAE
from debias.train import encode_all
from debias.weighting import histogram as current

REPO = Path(__file__).resolve().parents[1]


def module_at_revision(revision: str):
    """debias/weighting/histogram.py as it was at a git revision, imported under a private name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:debias/weighting/histogram.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"histogram_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _combine(total: np.ndarray | None, per_dim: np.ndarray, combine: str) -> np.ndarray:
    if total is None:
        return per_dim.copy()
    return np.maximum(total, per_dim) if combine == "max" else total + per_dim


def reference_numpy_loop(mu: np.ndarray, bins: int, alpha: float, combine: str = "geometric") -> np.ndarray:
    """The course code's per-dimension loop, float32 as it runs there (geometric by default)."""
    n, d = mu.shape
    log_w = None
    for i in range(d):
        counts, edges = np.histogram(mu[:, i], bins=bins)
        edges[0], edges[-1] = -np.inf, np.inf
        idx = np.digitize(mu[:, i], edges) - 1
        q = counts / n + alpha
        q = q / q.sum()
        log_w = _combine(log_w, -np.log(q[idx]), combine)
    return log_w / d if combine == "geometric" else log_w


def float64_formula(mu: np.ndarray, bins: int, alpha: float, combine: str = "geometric") -> tuple[np.ndarray, int]:
    """The same formula written plainly in float64 (the correctness reference).

    Also returns how many latent values sit exactly on an inner bin edge ((x - low) / width is
    an integer): the values float32 arithmetic tends to put in the neighbouring bin.
    """
    m = mu.astype(np.float64)
    low, high = m.min(0), m.max(0)
    width = np.where(high > low, (high - low) / bins, 1.0)
    scaled = (m - low) / width
    idx = np.clip(np.floor(scaled), 0, bins - 1).astype(np.int64)
    on_edge = int(((scaled == np.floor(scaled)) & (scaled > 0) & (scaled < bins)).sum())
    del m, scaled
    out = None
    for i in range(mu.shape[1]):
        q = np.bincount(idx[:, i], minlength=bins) / len(mu) + alpha
        q = q / q.sum()
        out = _combine(out, -np.log(q[idx[:, i]]), combine)
    return (out / mu.shape[1] if combine == "geometric" else out), on_edge


def _stats(times: list[float]) -> str:
    return f"{statistics.median(times):>10.3f}{min(times):>9.3f}{max(times):>9.3f}"


def main() -> None:
    """Time the density implementations and the encoding pass in interleaved rounds; print medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=100)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--combine", default="max,geometric", help="comma-separated combinations to time")
    parser.add_argument("--repeats", type=int, default=5, help="rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--chunk-rows", type=int, default=current.DEFAULT_CHUNK_ROWS)
    parser.add_argument("--compare", default=None, help="git revision whose histogram.py is timed alongside")
    parser.add_argument("--course-loop", action="store_true", help="also time the course's numpy loop")
    parser.add_argument("--encode-images", type=int, default=20_000, help="images encoded per round (0: skip)")
    parser.add_argument("--eval-batch", type=int, default=512)
    parser.add_argument(
        "--refresh-images", type=int, default=1_000_000, help="the refresh size encoding is extrapolated to"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    combines = args.combine.split(",")

    rng = np.random.default_rng(0)
    mu_np = rng.standard_normal((args.rows, args.dims), dtype=np.float32)
    mu_np[:, : args.dims // 4] **= 3  # some heavy-tailed dimensions, as trained encoders give
    mu = torch.from_numpy(mu_np)
    images = rng.integers(0, 256, (args.encode_images, 64, 64, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = DBVAE(args.dims, 64, 16).to(memory_format=torch.channels_last)

    def density(module):
        return lambda combine: module.histogram_log_weights(
            mu, args.bins, args.alpha, combine, chunk_rows=args.chunk_rows
        )

    impls = {"this checkout": density(current)}
    if args.compare:
        impls[f"at {args.compare}"] = density(module_at_revision(args.compare))
    if args.course_loop:
        impls["course numpy loop"] = lambda combine: reference_numpy_loop(mu_np, args.bins, args.alpha, combine)

    def encode():
        return encode_all(model, images, args.eval_batch, torch.device("cpu"))

    load_before = os.getloadavg()
    for name, fn in impls.items():  # first calls: allocator and page warm-up, not counted
        if name != "course numpy loop":
            fn(combines[0])
    if args.encode_images:
        timed(encode)
    times = {(name, c): [] for name in impls for c in combines}
    encode_times, outputs = [], {}
    for round_ in range(args.repeats):
        order = list(impls) if round_ % 2 == 0 else list(impls)[::-1]  # neither always runs first
        for combine in combines:
            for name in order:
                seconds, outputs[name, combine] = timed(lambda n=name, c=combine: impls[n](c))
                times[name, combine].append(seconds)
        if args.encode_images:
            encode_times.append(timed(encode)[0])
    load_after = os.getloadavg()

    print(machine_line(load_before, load_after))
    print(
        f"latents {args.rows:,} x {args.dims} float32, bins {args.bins}, alpha {args.alpha}, chunk_rows {args.chunk_rows}, "
        f"{args.repeats} rounds"
    )
    print(f"{'density':<36}{'median s':>10}{'min s':>9}{'max s':>9}{'vs this':>9}   max |log-weight - float64 formula|")
    for combine in combines:
        exact, on_edge = float64_formula(mu_np, args.bins, args.alpha, combine)
        base = statistics.median(times["this checkout", combine])
        for name in impls:
            out = outputs[name, combine]
            out = out.numpy() if isinstance(out, torch.Tensor) else out
            ratio = statistics.median(times[name, combine]) / base
            print(
                f"{combine + ', ' + name:<36}{_stats(times[name, combine])}{ratio:>8.2f}x   {np.abs(out - exact).max():.1e}"
            )
    print(f"({on_edge:,} values exactly on an inner bin edge)")
    if not args.encode_images:
        return
    per_image = statistics.median(encode_times) / args.encode_images
    encode_s = per_image * args.refresh_images
    print(
        f"encode_all, {args.encode_images:,} random 64x64 images, batch {args.eval_batch}: {_stats(encode_times)} s "
        f"({1 / per_image:,.0f} images/s)"
    )
    spread = (max(encode_times) - min(encode_times)) / statistics.median(encode_times)
    print(f"encode's own spread across rounds (max - min) / median: {100 * spread:.1f}%")
    print(
        f"weight refresh at {args.refresh_images:,} images = encode (extrapolated from {args.encode_images:,}: "
        f"{encode_s:.1f} s) + density of {args.rows:,} rows (median)"
    )
    for combine in combines:
        base = encode_s + statistics.median(times["this checkout", combine])
        for name in impls:
            total = encode_s + statistics.median(times[name, combine])
            print(
                f"  {combine + ', ' + name:<34}{total:>9.2f} s   {total / base:.4f}x this checkout's "
                f"({100 * (total - base) / base:+.3f}%)"
            )


if __name__ == "__main__":
    main()
