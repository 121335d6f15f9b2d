"""Can a testbed tell? The group-balanced oracle's worst-group lift over uniform sampling, per data setting.

    python benchmarks/testbed.py --data-option spurious=hat --seeds 0,1,2
    python benchmarks/testbed.py --variant rare_rate=0.005 --variant difficulty=1.5

The rule for changing the embedded data (docs/method.md, "Efficacy claims"): a testbed must let the
oracle, which balances the true groups, gain at least 10 points of worst-group test accuracy over
uniform sampling at the default budget, before any debias strategy is run. Only the plain
classifiers train here (uniform and oracle, as `debias fit` trains them), so a data setting costs
two classifier fits per seed. Each variant is a comma-separated list of loader options.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from machine import machine_line

from debias.cli_options import parse_data_options
from debias.data import load_dataset
from debias.distributed import SINGLE
from debias.fit import FitConfig
from debias.fit.draws import GroupBalancedDraw, UniformDraw
from debias.fit.evaluation import evaluate
from debias.fit.trainer import Trainer


def measure(dataset, config: FitConfig) -> dict:
    """Test accuracy and worst-group accuracy of the uniform and the oracle classifier."""
    cpu = torch.device("cpu")
    out = {}
    for name, draw_class in (("uniform", UniformDraw), ("oracle", GroupBalancedDraw)):
        trainer = Trainer(draw_class(name, dataset, config, cpu, SINGLE))
        trainer.train(progress=False)
        _, metrics = evaluate(trainer.model, dataset.test, dataset, config.eval_batch_size, cpu, False)
        out[name] = metrics
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthfaces")
    parser.add_argument("--data-option", action="append", default=[], help="KEY=VALUE for every variant")
    parser.add_argument("--variant", action="append", default=[], help="loader options of one variant: k=v,k=v")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    args = parser.parse_args()
    common = parse_data_options(tuple(args.data_option))
    load_before = os.getloadavg()
    rows = []
    for variant in args.variant or [""]:
        options = {**common, **parse_data_options(tuple(filter(None, variant.split(","))))}
        start = time.perf_counter()
        dataset = load_dataset(args.data, progress=False, **options)
        sizes = dataset.test.attributes.groupby(dataset.group_columns).size().to_dict() if dataset.group_columns else {}
        for seed in map(int, args.seeds.split(",")):
            result = measure(dataset, FitConfig(data=args.data, epochs=args.epochs, seed=seed))
            u, o = result["uniform"], result["oracle"]
            rows.append(
                {
                    "variant": variant or "defaults",
                    "seed": seed,
                    "uniform_acc": u["accuracy"],
                    "uniform_worst": u["worst_group_accuracy"],
                    "uniform_worst_group": u["worst_group"],
                    "oracle_acc": o["accuracy"],
                    "oracle_worst": o["worst_group_accuracy"],
                    "lift": o["worst_group_accuracy"] - u["worst_group_accuracy"],
                    "test_sizes": sizes,
                    "seconds": round(time.perf_counter() - start),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            start = time.perf_counter()
    print(machine_line(load_before, os.getloadavg()))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        lift = np.array([r["lift"] for r in mine]) * 100
        uw = np.array([r["uniform_worst"] for r in mine]) * 100
        ow = np.array([r["oracle_worst"] for r in mine]) * 100
        print(
            f"{variant:<40} uniform worst {uw.mean():5.1f} +- {uw.std():4.1f}   oracle worst {ow.mean():5.1f} +- {ow.std():4.1f}"
            f"   lift {lift.mean():+5.1f} (min {lift.min():+5.1f})"
        )


if __name__ == "__main__":
    main()
