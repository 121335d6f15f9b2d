"""Default `debias fit` on the embedded dataset with several seeds: uniform vs DB-VAE.

Prints mean and spread (sample standard deviation) of test accuracy and worst-group accuracy,
the wall time of each fit, and whether the targets hold (DB-VAE worst-group accuracy at least 10
points above uniform, mean accuracy no more than 1 point below).

    python benchmarks/fit_seeds.py                    # 3 seeds, default settings
    python benchmarks/fit_seeds.py --seeds 0 1 --combine product --alpha 0.001
    python benchmarks/fit_seeds.py --weighting errors+latent --models uniform,dbvae,oracle
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from debias.fit import FitConfig, run_fit
from debias.weighting import WeightingSettings


def main() -> None:
    """Run the fits and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--weighting", default=WeightingSettings.strategy, help="Weighting strategy of the DB-VAE.")
    parser.add_argument("--alpha", type=float, default=WeightingSettings.alpha)
    parser.add_argument("--bins", type=int, default=WeightingSettings.bins)
    parser.add_argument("--combine", default=WeightingSettings.combine)
    parser.add_argument("--cap", type=float, default=None)
    parser.add_argument("--latent-dim", type=int, default=FitConfig.latent_dim)
    parser.add_argument("--models", default=",".join(FitConfig.models), help="Comma-separated models to train.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the raw results here.")
    args = parser.parse_args()

    weighting = WeightingSettings(
        strategy=args.weighting, alpha=args.alpha, bins=args.bins, combine=args.combine, cap=args.cap
    )
    rows = []
    for seed in args.seeds:
        config = FitConfig(
            seed=seed,
            epochs=args.epochs,
            latent_dim=args.latent_dim,
            weighting=weighting,
            models=tuple(args.models.split(",")),
        )
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = run_fit(config, out=Path(tmp) / "run", progress=False)
            seconds = time.perf_counter() - start
        test = result["results"]["test"]
        rows.append(
            {
                "seed": seed,
                "seconds": seconds,
                "ess": result["final_weights"]["ess"],
                **{f"{m}_{k}": test[m][k] for m in test for k in ("accuracy", "worst_group_accuracy")},
            }
        )
        print(f"seed {seed}: {json.dumps({k: round(v, 4) for k, v in rows[-1].items()})}", flush=True)

    def stat(key: str) -> str:
        values = [100 * r[key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):6.2f} +- {spread:4.2f}"

    print(f"\nweighting: {weighting.to_dict()}, epochs {args.epochs}, seeds {args.seeds}")
    print(f"{'model':<10}{'accuracy %':>18}{'worst group %':>18}")
    for m in [m for m in ("uniform", "dbvae", "sampler", "oracle") if f"{m}_accuracy" in rows[0]]:
        print(f"{m:<10}{stat(m + '_accuracy'):>18}{stat(m + '_worst_group_accuracy'):>18}")
    gain = statistics.mean(100 * (r["dbvae_worst_group_accuracy"] - r["uniform_worst_group_accuracy"]) for r in rows)
    cost = statistics.mean(100 * (r["uniform_accuracy"] - r["dbvae_accuracy"]) for r in rows)
    wall = statistics.median(r["seconds"] for r in rows)
    print(f"\nworst-group gain {gain:+.2f} points (target >= +10); accuracy cost {cost:+.2f} points (target <= 1)")
    print(f"median wall time of one fit: {wall:.0f} s (target < 300 s on a 2-core CPU)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
