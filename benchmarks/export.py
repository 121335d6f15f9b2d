"""Which weights should weights.csv hold? The plain sampler trained on each way of exporting them.

    python benchmarks/export.py --seeds 0,1,2
    python benchmarks/export.py --set beta=0.0005,weighting=errors --seeds 0

One `debias fit` per seed (uniform, DB-VAE, sampler) records the DB-VAE's weights at every epoch; then a
plain classifier (the sampler: torch's WeightedRandomSampler over a weights file, as a user's pipeline
trains) is trained on each export of them, on the same data and seed:

    final         the weights of the final DB-VAE (what weights.csv holds today)
    mean          the mean of the weights over the DB-VAE's weighted epochs and the final one
    temper 0.5    the final weights to the power 0.5, renormalized (halves every log-weight)
    cap 10        the final weights capped at 10x the mean

Printed: each export's ESS, the mean weight of every training cell relative to the most common, and
the sampler's test accuracy and worst-group accuracy next to uniform's (mean +- sd over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from machine import machine_line
from variants import parse_variant

import debias.fit.draws as draws
from debias.cli_options import parse_data_options
from debias.data import load_dataset
from debias.distributed import SINGLE
from debias.fit import FitConfig, run_fit
from debias.fit.draws import FileDraw
from debias.fit.evaluation import evaluate
from debias.fit.trainer import Trainer
from debias.groups import group_labels
from debias.settings import replace_at
from debias.weight_files import write_weights
from debias.weighting import cap_weights, weight_summary


def exports(history: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """The candidate weights files from the DB-VAE's per-epoch weights (the last entry is the final refresh)."""
    final = history[-1].double()
    tempered = final.pow(0.5)
    return {
        "final": final.numpy(),
        "mean": torch.stack([w.double() for w in history]).mean(0).numpy(),
        "temper 0.5": (tempered * len(tempered) / tempered.sum()).numpy(),
        "cap 10": cap_weights(final, 10.0).numpy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthfaces")
    parser.add_argument("--data-option", action="append", default=[])
    parser.add_argument("--set", default="", help="settings of every fit, e.g. beta=0.0005 (field names)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    options = parse_data_options(tuple(args.data_option))
    base = replace_at(
        FitConfig(data=args.data, data_options=options, models=("uniform", "dbvae")), parse_variant(args.set)
    )
    dataset = load_dataset(args.data, image_size=base.image_size, progress=False, **options)
    train, cpu = dataset.train, torch.device("cpu")
    cells = group_labels(train.attributes, dataset.group_columns, train.labels).to_numpy()
    recorded: list[torch.Tensor] = []
    real_refresh = draws.DensityDraw.refresh

    def recording_refresh(self, *a, **k):
        stats = real_refresh(self, *a, **k)
        recorded.append(self.weights.detach().cpu().clone())
        return stats

    draws.DensityDraw.refresh = recording_refresh
    rows, load_before = [], os.getloadavg()
    for seed in map(int, args.seeds.split(",")):
        recorded.clear()
        config = replace_at(base, {("seed",): seed})
        with tempfile.TemporaryDirectory() as tmp:
            result = run_fit(config, out=Path(tmp) / "run", progress=False, dataset=dataset)
            rows.append({"seed": seed, "export": "uniform", **_figures(result["results"]["test"]["uniform"])})
            for name, weights in exports(list(recorded)).items():
                path = write_weights(Path(tmp) / f"{name}.csv", train.sample_ids, weights)
                draw = FileDraw("sampler", dataset, config, cpu, SINGLE)
                draw.weights_file = path
                trainer = Trainer(draw)
                trainer.train(progress=False)
                _, metrics = evaluate(trainer.model, dataset.test, dataset, config.eval_batch_size, cpu, False)
                frame = pd.DataFrame({"cell": cells, "w": weights})
                means = frame.groupby("cell")["w"].mean()
                common = (
                    frame.loc[frame["w"] != 1.0, "cell"].value_counts().idxmax() if (weights != 1).any() else cells[0]
                )
                rows.append(
                    {
                        "seed": seed,
                        "export": name,
                        "ess": weight_summary(torch.from_numpy(weights))["ess"],
                        "cells": (means / means[common]).round(2).to_dict(),
                        **_figures(metrics),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print(machine_line(load_before, os.getloadavg()))
    frame = pd.DataFrame(rows)
    for name, part in frame.groupby("export", sort=False):
        acc, wg = 100 * part["accuracy"], 100 * part["worst_group_accuracy"]
        cells_mean = (
            pd.DataFrame(list(part["cells"])).mean().round(2).to_dict()
            if "cells" in part and part["cells"].notna().all()
            else {}
        )
        print(
            f"{name:<12} accuracy {acc.mean():5.1f} +- {acc.std(ddof=0):4.1f}   worst group {wg.mean():5.1f} +- "
            f"{wg.std(ddof=0):4.1f}   ESS {part['ess'].mean() if 'ess' in part else float('nan'):.2f}   {cells_mean}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _figures(metrics: dict) -> dict:
    return {
        "accuracy": metrics["accuracy"],
        "worst_group_accuracy": metrics["worst_group_accuracy"],
        "worst_group": metrics["worst_group"],
    }


if __name__ == "__main__":
    main()
