"""Histogram density at scale: debias's chunked torch implementation vs the public course's numpy loop.

The reference is what the public lab code does per latent dimension: np.histogram with the
outer bin edges opened to infinity, np.digitize, 1 / (density + alpha), combined across
dimensions. Both sides are timed in the same run on the same latents, alternating (one run of
each per round, so both see the same load on a shared machine), and both are checked against a
straightforward float64 implementation of the same formula. Medians are quoted.

    python benchmarks/density.py --repeats 3              # 1,000,000 x 100 float32 latents
    python benchmarks/density.py --rows 200000 --repeats 5
    python benchmarks/density.py --threads 1              # torch intra-op threads (default: torch's)
    python benchmarks/density.py --edge-dims 10           # 10 dimensions whose values all sit on bin edges

Results and the machine they were measured on: BENCHMARKS.md, "Density at scale".
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
import torch

from debias.weighting import histogram_log_weights, normalize_log_weights
from debias.weighting.histogram import COMBINATIONS, DEFAULT_CHUNK_ROWS
from machine import machine_line, timed


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


def main() -> None:
    """Time both implementations, alternating, and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=100)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--combine", choices=COMBINATIONS, default="geometric")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; each times debias once and the reference once")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--edge-dims", type=int, default=0,
                        help="make this many dimensions integers 0..bins: every value then sits on a bin edge")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    mu_np = rng.standard_normal((args.rows, args.dims), dtype=np.float32)
    mu_np[:, : args.dims // 4] **= 3  # some heavy-tailed dimensions, as trained encoders give
    if args.edge_dims:
        mu_np[:, args.dims - args.edge_dims :] = rng.integers(0, args.bins + 1, (args.rows, args.edge_dims))
    mu = torch.from_numpy(mu_np)

    def ours():
        return histogram_log_weights(mu, args.bins, args.alpha, args.combine, chunk_rows=args.chunk_rows)

    def reference():
        return reference_numpy_loop(mu_np, args.bins, args.alpha, args.combine)

    load_before = os.getloadavg()
    first_s, _ = timed(ours)  # first call: allocator warm-up, not counted
    ours_times, ref_times = [], []
    for _ in range(args.repeats):
        seconds, ours_out = timed(ours)
        ours_times.append(seconds)
        seconds, ref_out = timed(reference)
        ref_times.append(seconds)
    load_after = os.getloadavg()
    exact, on_edge = float64_formula(mu_np, args.bins, args.alpha, args.combine)

    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    ours_lw = ours_out.numpy()
    weights = {name: normalize_log_weights(torch.from_numpy(lw)).numpy() for name, lw in [("ours", ours_lw), ("ref", ref_out), ("exact", exact)]}
    print(machine_line(load_before, load_after))
    print(f"latents {args.rows:,} x {args.dims} float32, bins {args.bins}, alpha {args.alpha}, {args.combine}, "
          f"chunk_rows {args.chunk_rows}, {args.repeats} rounds; {on_edge:,} values exactly on an inner bin edge")
    print(f"{'implementation':<36}{'median s':>10}{'min s':>9}{'max s':>9}{'speed-up':>10}")
    print(f"{'reference: numpy loop per dim':<36}{ref_s:>10.3f}{min(ref_times):>9.3f}{max(ref_times):>9.3f}{1.0:>10.1f}")
    print(f"{'debias: chunked torch, packed codes':<36}{ours_s:>10.3f}{min(ours_times):>9.3f}{max(ours_times):>9.3f}{ref_s / ours_s:>10.1f}")
    print(f"(debias first call, not counted: {first_s:.3f} s)")
    print("max |difference| from the float64 formula:   log-weight   weight (mean 1)")
    print(f"  debias                                     {np.abs(ours_lw - exact).max():10.2e}   {np.abs(weights['ours'] - weights['exact']).max():10.2e}")
    print(f"  reference                                  {np.abs(ref_out - exact).max():10.2e}   {np.abs(weights['ref'] - weights['exact']).max():10.2e}")


if __name__ == "__main__":
    main()
