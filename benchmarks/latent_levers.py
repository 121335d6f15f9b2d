"""Which settings make the DB-VAE learn its faces: latent health and rare-group weights per variant.

    python benchmarks/latent_levers.py --variant beta=0.01 --variant beta=0.0005 --seeds 0
    python benchmarks/latent_levers.py --data celeba --root DIR --variant beta=0.0005,epochs=12

Each variant is a comma-separated list of FitConfig / WeightingSettings field names and values
(the fields' own names: beta, epochs, vae_warmup_epochs, combine, ...). One fit per variant and
seed trains the DB-VAE (and, with --models, others) on data loaded once; the table shows its
latent health at the end (test split), the linear probe of mu per group attribute, the mean
weight of each training cell relative to the mean weight of the most common cell, the ESS, and
the DB-VAE's test accuracy and worst-group accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import machine_line
from variants import cell_weights, parse_variant

from debias.cli_options import parse_data_options
from debias.data import load_dataset
from debias.fit import FitConfig, run_fit
from debias.settings import replace_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthfaces")
    parser.add_argument(
        "--root", default=None, help="the dataset folder (--data celeba: a CelebA folder, official layout)"
    )
    parser.add_argument("--target", default=None)
    parser.add_argument("--groups", default=None)
    parser.add_argument("--data-option", action="append", default=[], help="KEY=VALUE for the loader")
    parser.add_argument("--variant", action="append", default=[], help="settings of one variant, e.g. beta=0.0005")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--image-size", type=int, default=FitConfig.image_size)
    parser.add_argument("--models", default="dbvae")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    options = {k: v for k, v in (("root", args.root), ("target", args.target), ("groups", args.groups)) if v}
    options.update(parse_data_options(tuple(args.data_option)))
    base = FitConfig(
        data=args.data, data_options=options, models=tuple(args.models.split(",")), image_size=args.image_size
    )
    dataset = load_dataset(args.data, image_size=base.image_size, progress=False, **options)
    rows = []
    load_before = __import__("os").getloadavg()
    for variant in args.variant or [""]:
        for seed in map(int, args.seeds.split(",")):
            config = replace_at(base, {**parse_variant(variant), ("seed",): seed})
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                result = run_fit(config, out=Path(tmp) / "run", progress=False, dataset=dataset)
                seconds = time.perf_counter() - start
                cells = cell_weights(Path(tmp) / "run", dataset)
            health, test = result["latent_health"], result["results"]["test"]["dbvae"]
            rows.append(
                {
                    "variant": variant or "defaults",
                    "seed": seed,
                    "seconds": round(seconds),
                    "kl_nats": round(health["kl_nats"], 1),
                    "active": health["active_dims"],
                    "recon_ratio": round(health["reconstruction_ratio"], 3),
                    "probe": {k: round(v, 2) for k, v in health.get("probe", {}).items()},
                    "ess": round(result["final_weights"]["ess"], 2),
                    "cells": cells,
                    "accuracy": round(test["accuracy"], 4),
                    "worst_group": round(test["worst_group_accuracy"], 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(machine_line(load_before, __import__("os").getloadavg()))
    frame = pd.DataFrame(rows).drop(columns=["probe", "cells"])
    print(frame.to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
