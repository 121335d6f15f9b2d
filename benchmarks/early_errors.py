"""What JTT upweights: the share of each training cell (group x label) the early classifier gets wrong.

    python benchmarks/early_errors.py --testbed celeba --celeba-root DIR --seed 0
    python benchmarks/early_errors.py --testbed default

Trains only the uniform baseline of a default `debias fit` on the testbed (efficacy.py's testbeds)
and reads its early predictions (the run's early_probs.npy): the epoch the errors strategies would use
(`--errors-epoch`, or the first later one that errs less than always predicting the majority class),
the error rate per class and per cell.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from efficacy import TESTBEDS, testbed_spec

from debias.data import load_dataset
from debias.fit import FitConfig, run_fit
from debias.groups import group_labels


def main() -> None:
    """Print the early classifier's epoch and its error rates per class and per training cell."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testbed", choices=TESTBEDS, default="default")
    parser.add_argument("--celeba-root", type=Path, help="a CelebA folder (official layout), for the celeba testbeds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = testbed_spec(args.testbed, args.celeba_root)
    config = FitConfig(data=spec["data"], data_options=spec["data_options"], seed=args.seed, models=("uniform",))
    dataset = load_dataset(spec["data"], image_size=config.image_size, progress=False, **spec["data_options"])
    with tempfile.TemporaryDirectory() as tmp:
        result = run_fit(config, out=Path(tmp) / "run", progress=False, dataset=dataset)
        early_probs = np.load(Path(tmp) / "run" / "early_probs.npy")
    train = dataset.train
    wrong = (early_probs >= 0.5) != train.labels.astype(bool)
    frame = pd.DataFrame(
        {
            "label": train.labels,
            "cell": group_labels(train.attributes, dataset.group_columns, train.labels).to_numpy(),
            "wrong": wrong,
        }
    )
    early = result.get("early_errors") or {}
    print(
        f"{args.testbed} seed {args.seed}: early classifier after epoch {early.get('epoch')}, {wrong.mean():.1%} wrong"
    )
    for key in ("label", "cell"):
        table = frame.groupby(key)["wrong"].agg(rows="count", wrong="sum", rate="mean")
        print(table.assign(rate=np.round(100 * table["rate"], 1)).rename(columns={"rate": "% wrong"}).to_string())


if __name__ == "__main__":
    main()
