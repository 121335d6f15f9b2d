"""Do the weights help? Every strategy against uniform sampling and the group-balanced oracle, on three testbeds.

    python benchmarks/efficacy.py                                   # 3 seeds x 3 testbeds x every strategy + auto
    python benchmarks/efficacy.py --results runs/efficacy.jsonl     # resumable: finished fits are read, not rerun
    python benchmarks/efficacy.py --datasets default --seeds 0 --limit 600 --set epochs=1,image_size=32   # smoke test

Testbeds (docs: "Efficacy claims" and "Do no harm"): each is where some strategy's assumption holds or
fails. A testbed "can tell" when the group-balanced oracle gains >= 10 points of worst-group accuracy
over uniform; where it gains nothing the testbed asks that no strategy costs anything (do no harm).

- default: `debias fit`'s own data (synthfaces face detection; groups: the face subgroups). The rare
  subgroups are the early classifier's errors: JTT's assumption holds.
- spurious: synthfaces spurious mode (`spurious=hat`): glasses tied to hats in training; groups hat x label.
- default-noise, spurious-noise: the same with 10% of the training labels flipped (`label_noise=0.1`;
  validation and test true): the early errors are mostly wrong labels.
- default-hard: 20% of the common faces and non-faces drawn hard (`hard_rate=0.2`: low contrast, blur,
  occlusion): the early errors fall mostly on hard common faces, the rare subgroups stay rare in looks.
- no-shortcut: spurious mode with the hat independent of the label (`spurious_rate=0.5`) and 20% hard
  faces: nothing to fix, the early errors are hard images spread over every group (do no harm).
- celeba, celeba-smiling, celeba-young: the CelebA folder given by --celeba-root (the 4,559-image
  sample has 8 blond test men: read its figures with their intervals), targets Blond_Hair, Smiling
  and Young, groups Male.

Per testbed and seed, one `debias fit` per strategy: the first trains uniform and the oracle too; every
fit trains `dbvae` (the DB-VAE drawing by the strategy's weights) and `sampler` (a plain classifier
trained through torch's WeightedRandomSampler on the exported weights.csv, what a user's pipeline
does). Each fit's figures are appended to the results file as one JSON line as soon as it ends.

Printed per strategy and model: test accuracy and worst-group accuracy (mean +- sd over seeds), the
seeds' mean Clopper-Pearson interval of the worst group, the share of the oracle's worst-group lift
it recovers (ratio of the seed means), its accuracy cost against uniform, the exact McNemar p-value
per seed against uniform on the group that is worst for uniform (same test images), the ESS, and the
mean weight weights.csv gives each training cell relative to the most common one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from machine import machine_line
from scipy.stats import binomtest
from variants import cell_weights, parse_variant

from debias.data import load_dataset
from debias.fit import FitConfig, run_fit
from debias.fit.auto import UNIFORM, choose_over_uniform
from debias.fit.run import Fit
from debias.groups import group_labels
from debias.run_dir import prepare_run_dir
from debias.settings import replace_at
from debias.weighting import STRATEGIES, WeightingSettings, needs_groups

SYNTHETIC = {
    "default": {},
    "spurious": {"spurious": "hat"},
    "default-noise": {"label_noise": 0.1},
    "spurious-noise": {"spurious": "hat", "label_noise": 0.1},
    "default-hard": {"hard_rate": 0.2},
    "no-shortcut": {"spurious": "hat", "spurious_rate": 0.5, "hard_rate": 0.2},
}
CELEBA_TARGETS = {"celeba": "Blond_Hair", "celeba-smiling": "Smiling", "celeba-young": "Young"}
TESTBEDS = [*SYNTHETIC, *CELEBA_TARGETS]


def testbed_spec(testbed: str, celeba_root: Path | None) -> dict:
    """The data and loader options of a testbed (CelebA ones need the folder)."""
    if testbed in SYNTHETIC:
        return dict(data="synthfaces", data_options=dict(SYNTHETIC[testbed]))
    if celeba_root is None:
        raise SystemExit(f"testbed {testbed} reads CelebA: give its folder with --celeba-root DIR")
    return dict(
        data="celeba",
        data_options={"root": str(celeba_root), "target": CELEBA_TARGETS[testbed], "groups": "Male"},
    )


# Strategies that reweight without group labels (uniform is the baseline row, the oracle the group-label one);
# `classes` reads only the target labels, as every strategy does.
# `uniform` as a strategy is the DB-VAE and the sampler drawing by weights all 1: what the fit trains when
# `--weighting auto` keeps uniform sampling.
STRATEGY_NAMES = [name for name in STRATEGIES if not needs_groups(name)]
# Not a fit: the choice `--weighting auto` makes among --auto-candidates (and uniform), recorded to
# assemble auto's rows from the direct fits of what it chose (an auto fit is the fit of its choice).
AUTO_CHOICE = "auto-choice"


class ChoiceOnly(Fit):
    """A fit that stops once `--weighting auto` has chosen: the uniform baseline, the DB-VAE's warm-up, the candidates."""

    def _phases(self, dataset):
        self.dataset = self._checked_dataset(dataset)
        self._start_run_folder()
        self._build_trainers()
        self._train("uniform")
        self._train("dbvae", until=self.trainers["dbvae"].draw.warmup_epochs)
        self._choose_strategy()
        return {"weighting_selection": self.state.selection}


def run_choice(testbed: str, seed: int, dataset, base: FitConfig, candidates: tuple[str, ...]) -> dict:
    """auto's selection record (every candidate's validation figures against uniform's) on one testbed and seed."""
    config = replace(
        base,
        seed=seed,
        weighting=replace(base.weighting, strategy="auto"),
        auto_strategies=candidates,
        models=("uniform", "dbvae"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, lock = prepare_run_dir(Path(tmp) / "run", config.data, False)
        start = time.perf_counter()
        try:
            result = ChoiceOnly(run_dir, config, torch.device("cpu"), False).run(dataset)
        finally:
            lock.release()
    return {
        "testbed": testbed,
        "seed": seed,
        "strategy": AUTO_CHOICE,
        "seconds": time.perf_counter() - start,
        "selection": result["weighting_selection"],
    }


def fit_key(testbed: str, seed: int, strategy: str, settings: str) -> str:
    """The identity of one fit in the results file."""
    return hashlib.sha1(json.dumps([testbed, seed, strategy, settings]).encode()).hexdigest()[:12]


def run_one(
    testbed: str, seed: int, strategy: str, first: bool, dataset, base: FitConfig, keep: Path | None = None
) -> dict:
    """One fit; its per-model test figures and predictions, the cell weights and the ESS.

    `keep`: the folder to keep the run in (else a temporary one)."""
    config = replace(
        base,
        seed=seed,
        weighting=replace(base.weighting, strategy=strategy),
        models=("uniform", "dbvae", "sampler", "oracle") if first else ("dbvae", "sampler"),
        val_groups=(),  # auto chooses as `debias fit --weighting auto` does by default: no group labels at all
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = keep if keep is not None else Path(tmp) / "run"
        start = time.perf_counter()
        result = run_fit(config, out=run, overwrite=keep is not None, progress=False, dataset=dataset)
        seconds = time.perf_counter() - start
        predictions = pd.read_csv(run / "predictions_test.csv")
        cells = cell_weights(run, dataset)
    models = {}
    for model, metrics in result["results"]["test"].items():
        if model in ("uniform", "oracle") and not first:
            continue  # trained again for the errors strategies: the first fit of the seed has them
        rows = predictions[predictions["model"] == model]
        models[model] = {
            "accuracy": metrics["accuracy"],
            "worst_group_accuracy": metrics["worst_group_accuracy"],
            "worst_group": metrics["worst_group"],
            "groups": {g: [v["accuracy"], v["count"]] for g, v in metrics["groups"].items()},
            "correct": "".join("1" if c else "0" for c in (rows["pred"] == rows["label"]).to_numpy()),
        }
    return {
        "testbed": testbed,
        "seed": seed,
        "strategy": strategy,
        "seconds": seconds,
        "models": models,
        "chosen": (result.get("weighting_selection") or {}).get("chosen"),
        "ess": result["final_weights"]["ess"],
        "cells": cells,
        "latent_health": {k: v for k, v in result.get("latent_health", {}).items() if k != "probe"},
    }


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact 95% interval of a proportion k/n."""
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return ci.low, ci.high


def mcnemar_p(a: str, b: str, rows: np.ndarray) -> float:
    """Exact McNemar p-value of two models' correctness strings on the given test rows."""
    x = np.frombuffer(a.encode(), dtype=np.uint8)[rows] == ord("1")
    y = np.frombuffer(b.encode(), dtype=np.uint8)[rows] == ord("1")
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b).pvalue


def summarize(records: list[dict], test_groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """Print one table per testbed (see the module docstring); returns the rows, one per fit and model."""
    frame = []
    for r in records:
        if r["strategy"] == AUTO_CHOICE:
            continue
        for model, m in r["models"].items():
            row = model if model in ("uniform", "oracle") else r["strategy"]
            row = "weights all 1" if row == "uniform" and model != "uniform" else row
            frame.append(
                {
                    "testbed": r["testbed"],
                    "seed": r["seed"],
                    "row": row,
                    "model": model,
                    **m,
                    "ess": r["ess"] if model in ("dbvae", "sampler") else np.nan,
                    "cells": r["cells"] if model in ("dbvae", "sampler") else {},
                    "chosen": r["chosen"],
                }
            )
    frame = pd.DataFrame(frame)
    for testbed, data in frame.groupby("testbed", sort=False):
        groups = test_groups[testbed]
        base = data[data["row"] == "uniform"].set_index("seed")
        u_wg, u_acc = base["worst_group_accuracy"].mean(), base["accuracy"].mean()
        o_wg = data.loc[data["row"] == "oracle", "worst_group_accuracy"].mean()
        print(
            f"\n{testbed}: test accuracy / worst-group accuracy in %, mean +- sd over seeds {sorted(base.index)}; "
            f"oracle lift {100 * (o_wg - u_wg):+.1f} points"
        )
        print(
            f"{'strategy':<15}{'model':<8}{'accuracy':>13}{'worst group':>13}{'worst 95% CI':>15}{'recovers':>9}"
            f"{'cost':>6}{'McNemar p per seed':>22}{'ESS':>6}  rare cells' mean weight"
        )
        for (row, model), part in data.groupby(["row", "model"], sort=False):
            wg, acc = part["worst_group_accuracy"], part["accuracy"]
            lows, highs, ps = [], [], []
            for _, r in part.iterrows():
                k, n = (
                    r["groups"][r["worst_group"]][0] * r["groups"][r["worst_group"]][1],
                    r["groups"][r["worst_group"]][1],
                )
                low, high = clopper_pearson(round(k), n)
                lows.append(low)
                highs.append(high)
                if row != "uniform" and r["seed"] in base.index:
                    uniform = base.loc[r["seed"]]
                    ps.append(
                        mcnemar_p(r["correct"], uniform["correct"], np.flatnonzero(groups == uniform["worst_group"]))
                    )
            recovers = (wg.mean() - u_wg) / (o_wg - u_wg) if o_wg - u_wg > 1e-9 else float("nan")
            cells = pd.DataFrame(list(part["cells"])).mean().round(2).to_dict() if part["cells"].map(bool).any() else {}
            label = row if row != "auto" else f"auto ({','.join(map(str, part['chosen']))})"
            if len(label) > 14:  # auto's choices get a line of their own
                print(label)
                label = ""
            print(
                f"{label:<15}{model:<8}{100 * acc.mean():6.1f} +-{100 * acc.std(ddof=0):4.1f}"
                f"{100 * wg.mean():7.1f} +-{100 * wg.std(ddof=0):4.1f}"
                f"   [{100 * np.mean(lows):4.1f},{100 * np.mean(highs):5.1f}]{recovers:9.2f}{100 * (u_acc - acc.mean()):6.1f}"
                f"{','.join(f'{p:.3f}' for p in ps):>22}{part['ess'].mean():6.2f}  "
                + " ".join(f"{c.split('|')[0]}|{c.split('|')[-1][-1]}:{w}" for c, w in cells.items())
            )
    return frame


def summarize_extremes(frame: pd.DataFrame) -> None:
    """Per strategy and model: its best testbed beside its worst, by the seed-mean change of worst-group
    accuracy against uniform (points), with the accuracy change and the share of the oracle's lift."""
    if frame.empty:
        return
    means = frame.groupby(["testbed", "row", "model"], sort=False)[["accuracy", "worst_group_accuracy"]].mean()
    rows = []
    for (testbed, row, model), m in means.iterrows():
        if row in ("uniform", "oracle") or (testbed, "uniform", "uniform") not in means.index:
            continue
        u = means.loc[(testbed, "uniform", "uniform")]
        lift = means.loc[(testbed, "oracle", "oracle"), "worst_group_accuracy"] - u["worst_group_accuracy"]
        change = m["worst_group_accuracy"] - u["worst_group_accuracy"]
        seeds = int(((frame["testbed"] == testbed) & (frame["row"] == row) & (frame["model"] == model)).sum())
        rows.append(
            {
                "strategy": row,
                "model": model,
                "testbed": f"{testbed} ({seeds})",
                "worst group": 100 * change,
                "accuracy": 100 * (m["accuracy"] - u["accuracy"]),
                "recovers": change / lift if lift >= 0.10 else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return
    print("\nEach strategy's best and worst testbed (change against uniform in points, seed means; (n) seeds):")
    for (strategy, model), part in table.groupby(["strategy", "model"], sort=False):
        best, worst = part.loc[part["worst group"].idxmax()], part.loc[part["worst group"].idxmin()]
        print(
            f"{strategy:<24}{model:<8} best {best['testbed']:<20}{best['worst group']:+6.1f} wg {best['accuracy']:+5.1f} acc"
            f" (recovers {best['recovers']:.2f})   worst {worst['testbed']:<20}{worst['worst group']:+6.1f} wg"
            f" {worst['accuracy']:+5.1f} acc (recovers {worst['recovers']:.2f})"
        )


def outcome(record: dict) -> str:
    """One line of a record: each model's accuracy / worst-group accuracy, or auto's choice."""
    if record["strategy"] == AUTO_CHOICE:
        return f"chose {record['selection']['chosen']}"
    return "  ".join(f"{k} {v['accuracy']:.3f}/{v['worst_group_accuracy']:.3f}" for k, v in record["models"].items())


def chosen_among(selection: dict, candidates: tuple[str, ...]) -> str:
    """What `--weighting auto` with these candidates (and uniform) chooses, from a record of a superset of them."""
    figures = {name: f for name, f in selection["candidates"].items() if name == UNIFORM or name in candidates}
    missing = set(candidates) - set(figures)
    if missing:
        raise KeyError(f"the auto-choice record has no candidate {', '.join(sorted(missing))}")
    return choose_over_uniform(figures, selection["criterion"], selection["accuracy_budget"] / 100)


def summarize_auto(records: list[dict], subsets: list[tuple[str, ...]]) -> None:
    """Per testbed and candidate set: auto's choice per seed and the test figures of the fits of what it chose."""
    fits = {(r["testbed"], r["seed"], r["strategy"]): r for r in records if r["strategy"] != AUTO_CHOICE}
    base = {(r["testbed"], r["seed"]): r["models"]["uniform"] for r in records if "uniform" in r.get("models", {})}
    oracle = {(r["testbed"], r["seed"]): r["models"]["oracle"] for r in records if "oracle" in r.get("models", {})}
    choices = [r for r in records if r["strategy"] == AUTO_CHOICE]
    for testbed in dict.fromkeys(r["testbed"] for r in choices):
        print(f"\n{testbed}: auto, assembled from the fits of its choices (accuracy / worst group, %, vs uniform)")
        for subset in subsets:
            rows = {"dbvae": [], "sampler": []}
            chosen, lifts = [], []
            for r in (c for c in choices if c["testbed"] == testbed):
                pick = chosen_among(r["selection"], subset)
                chosen.append(pick)
                fit = fits.get((testbed, r["seed"], pick))
                u, o = base.get((testbed, r["seed"])), oracle.get((testbed, r["seed"]))
                if fit is None or u is None:
                    continue
                for model in rows:
                    m = fit["models"][model]
                    rows[model].append(
                        (m["accuracy"] - u["accuracy"], m["worst_group_accuracy"] - u["worst_group_accuracy"])
                    )
                if o is not None:
                    lifts.append(o["worst_group_accuracy"] - u["worst_group_accuracy"])
            lift = np.mean(lifts) if lifts else float("nan")
            text = " ".join(
                f"{model} {100 * np.mean([a for a, _ in v]):+.1f}/{100 * np.mean([w for _, w in v]):+.1f}"
                + (f" (recovers {np.mean([w for _, w in v]) / lift:.2f})" if lift > 1e-9 else "")
                for model, v in rows.items()
                if v
            )
            print(f"  uniform,{','.join(subset):<40} chose {','.join(chosen):<30} {text}")


def main() -> None:
    """Run the fits that are not in the results file yet, then print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=TESTBEDS, default=list(SYNTHETIC))
    parser.add_argument("--celeba-root", type=Path, help="a CelebA folder (official layout), for the celeba testbeds")
    parser.add_argument("--keep-runs", type=Path, help="keep every fit's run folder under DIR/TESTBED/seedN/STRATEGY")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=[*STRATEGY_NAMES, "auto", AUTO_CHOICE],
        default=[*STRATEGY_NAMES, AUTO_CHOICE],
    )
    parser.add_argument(
        "--auto-candidates",
        default="errors,classes,histogram,errors+latent",
        help="the candidates of the auto-choice records (uniform is always one)",
    )
    parser.add_argument(
        "--auto-subsets",
        nargs="*",
        default=["errors", "errors,classes", "errors,classes,histogram", "errors,classes,histogram,errors+latent"],
        help="auto rows to assemble from the auto-choice records: the candidates of each (besides uniform)",
    )
    parser.add_argument("--also-read", type=Path, nargs="*", default=[], help="more results files, read only")
    parser.add_argument("--set", default="", help="settings for every fit, e.g. beta=0.0005,epochs=6 (field names)")
    parser.add_argument("--limit", type=int, default=None, help="images per split (a quick check)")
    parser.add_argument("--results", type=Path, default=Path("runs/efficacy.jsonl"))
    parser.add_argument("--summary-only", action="store_true", help="print the tables of the results file")
    args = parser.parse_args()

    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    for path in [*args.also_read, args.results]:
        if path.is_file():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                done[record["key"]] = record
    load_before = __import__("os").getloadavg()
    records, test_groups = [], {}
    for testbed in args.datasets:
        spec = testbed_spec(testbed, args.celeba_root)
        options = dict(spec["data_options"], **({"limit": args.limit} if args.limit else {}))
        base = replace_at(
            FitConfig(data=spec["data"], data_options=options, weighting=WeightingSettings()), parse_variant(args.set)
        )
        dataset = load_dataset(spec["data"], image_size=base.image_size, progress=False, **options)
        test = dataset.test
        test_groups[testbed] = group_labels(test.attributes, dataset.group_columns, test.labels).to_numpy()
        for seed in args.seeds:
            for strategy in args.strategies:
                key = fit_key(testbed, seed, strategy, f"{args.set}|{args.limit}")
                if key not in done and not args.summary_only:
                    # uniform and the oracle train once per testbed and seed, in whichever fit comes first
                    first = not any(
                        r["testbed"] == testbed and r["seed"] == seed and "uniform" in r.get("models", {})
                        for r in done.values()
                    )
                    keep = None if args.keep_runs is None else args.keep_runs / testbed / f"seed{seed}" / strategy
                    if strategy == AUTO_CHOICE:
                        record = run_choice(testbed, seed, dataset, base, tuple(args.auto_candidates.split(",")))
                    else:
                        record = run_one(testbed, seed, strategy, first, dataset, base, keep)
                    done[key] = dict(record, key=key, settings=args.set, limit=args.limit)
                    with args.results.open("a") as out:
                        out.write(json.dumps(done[key]) + "\n")
                    print(
                        f"{testbed} seed {seed} {strategy:<14}{outcome(record)}  ({record['seconds']:.0f} s)",
                        flush=True,
                    )
                if key in done:
                    records.append(done[key])
    print(machine_line(load_before, __import__("os").getloadavg()))
    summarize_extremes(summarize(records, test_groups))
    summarize_auto(records, [tuple(subset.split(",")) for subset in args.auto_subsets])


if __name__ == "__main__":
    main()
