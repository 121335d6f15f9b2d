"""Where the time of one `debias fit` goes: each phase's wall time and peak memory, each model's epochs.

Question (issue 24). Within one fit (one process, so one machine load for every model):

  1. how long a DB-VAE epoch takes against a uniform epoch (history.csv's seconds per epoch;
     medians of the DB-VAE's warm-up epochs, which draw uniformly, and of its weighted epochs),
     on the embedded data and on a manifest of real-size images (--celeba-folder writes one);
  2. how long the whole fit takes, phase by phase (data, each model's training, the weights, the
     evaluation, the results), with the load average at the end of each phase;
  3. how far it scales: the peak resident memory after each phase (VmHWM, which counts the pages
     of a memory-mapped image cache as they are read) and each model's training images per second
     (rows drawn per epoch over the epoch's seconds, validation included), from which a CelebA-size
     fit (--data-option n_train=162000) or a GPU run (--device cuda) is projected.

Options this script does not know go to `debias fit` unchanged (run in this process, so that the
phases can be timed). --compare RUN says, model by model, whether this fit's test predictions
(predictions_test.csv) and its weights.csv are bit-identical to RUN's: a check that a speed-up left
the figures alone (same seed, same OMP_NUM_THREADS).

    python benchmarks/fit_speed.py --out /tmp/fit                       # the default fit
    python benchmarks/fit_speed.py --out /tmp/fit --compare /tmp/before # ... against a fit of other code
    python benchmarks/fit_speed.py --celeba-folder DIR --out /tmp/faces # DIR: CelebA's files (any subset)
    python benchmarks/fit_speed.py --out /tmp/big --data-option n_train=40000
    python benchmarks/fit_speed.py --out /tmp/big --data-option n_train=162000 --data-only   # the data phase alone

--celeba-folder DIR writes a manifest (path, label = Blond_Hair, split, Male) of the images in
DIR/img_align_celeba (178x218 JPEGs, as CelebA ships them) from DIR's list_attr_celeba.txt and
list_eval_partition.txt into the output folder's parent, and fits on it with --groups Male.

Results and the machine they were measured on: BENCHMARKS.md, "Fit speed".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from machine import machine_line

from debias.cli import main as debias_main
from debias.data.celeba import ATTR_FILE, IMAGE_DIR, PARTITION_FILE, find_celeba_root, read_attributes, read_partition
from debias.fit.run import Fit

# Fit methods that make up its phases (debias.fit.run), timed by wrapping them here.
PHASE_METHODS = ("_checked_dataset", "_build_trainers", "_train", "_choose_strategy", "_write_weights", "_evaluate")
PHASE_NAMES = {
    "_checked_dataset": "data",
    "_build_trainers": "models",
    "_choose_strategy": "strategy",
    "_write_weights": "weights",
    "_evaluate": "evaluation",
}


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (VmHWM), GiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


class DataLoaded(Exception):
    """Raised after the data phase with --data-only: the fit stops there."""


def instrument(phases: list[dict], data_only: bool = False) -> None:
    """Wrap Fit's phase methods so that each call appends {phase, seconds, cpu_s, peak_rss_gib, load} to
    `phases`; with `data_only`, stop the fit (DataLoaded) once its data are loaded and checked."""

    def wrap(method_name: str):
        original = getattr(Fit, method_name)

        def timed(self, *args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return original(self, *args, **kwargs)
            finally:
                if method_name == "_train":
                    name = args[0]
                    phase = f"{name} warm-up" if kwargs.get("until") is not None else name
                else:
                    phase = PHASE_NAMES[method_name]
                seconds = time.perf_counter() - start
                if seconds > 0.005:  # a model this fit does not train
                    phases.append(
                        {
                            "phase": phase,
                            "seconds": seconds,
                            "cpu_s": time.process_time() - cpu_start,
                            "peak_rss_gib": peak_rss_gib(),
                            "load": os.getloadavg()[0],
                        }
                    )
                if data_only and phase == "data":
                    raise DataLoaded

        setattr(Fit, method_name, timed)

    for method_name in PHASE_METHODS:
        wrap(method_name)
    original_finish = Fit._finish

    def finish(self, *args, **kwargs):
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            return original_finish(self, *args, **kwargs)
        finally:
            phases.append(
                {
                    "phase": "results",
                    "seconds": time.perf_counter() - start,
                    "cpu_s": time.process_time() - cpu_start,
                    "peak_rss_gib": peak_rss_gib(),
                    "load": os.getloadavg()[0],
                }
            )

    Fit._finish = finish


# Parts of an epoch (debias.fit.trainer.Trainer.run_epoch), timed by wrapping the functions it calls.
EPOCH_PARTS = {
    "augment": ("debias.augment", "flip_and_shift"),  # runs inside the training loop, so subtracted from it
    "train": ("debias.fit.trainer", "train_one_epoch"),
    "validation": ("debias.fit.trainer", "evaluate"),
    "latent health": ("debias.fit.trainer", "latent_health"),
}


def instrument_epochs(parts: dict[str, dict[str, dict[str, float]]], cpu_epochs: dict[str, list[float]]) -> None:
    """Wrap what an epoch calls: `parts[clock][model][part]` sums its seconds of wall ("wall") and
    process CPU ("cpu") time, the DB-VAE's refresh included; `cpu_epochs[model]` lists each epoch's CPU seconds.

    CPU time is the measure that holds on a shared machine: with one torch thread it is the work
    done, whatever share of the cores the process got.
    """
    import importlib

    from debias.fit.draws import DensityDraw
    from debias.fit.trainer import Trainer

    current = {"model": None}

    def add(part: str, wall: float, cpu: float) -> None:
        if current["model"] is not None:
            for clock, seconds in (("wall", wall), ("cpu", cpu)):
                totals = parts.setdefault(clock, {}).setdefault(current["model"], {})
                totals[part] = totals.get(part, 0.0) + seconds

    def timing(part: str, function):
        def timed(*args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                add(part, time.perf_counter() - start, time.process_time() - cpu_start)

        return timed

    for part, (module_name, name) in EPOCH_PARTS.items():
        module = importlib.import_module(module_name)
        setattr(module, name, timing(part, getattr(module, name)))
    DensityDraw.refresh = timing("refresh", DensityDraw.refresh)
    run_epoch = Trainer.run_epoch

    def epoch(self, *args, **kwargs):
        current["model"] = self.name
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            return run_epoch(self, *args, **kwargs)
        finally:
            cpu = time.process_time() - cpu_start
            add("epoch", time.perf_counter() - start, cpu)
            cpu_epochs.setdefault(self.name, []).append(cpu)
            current["model"] = None

    Trainer.run_epoch = epoch


def epoch_parts_table(parts: dict[str, dict[str, float]], epochs: dict[str, int]) -> dict[str, dict[str, float]]:
    """Seconds per epoch of each part, per model: training steps (without augmentation), augmentation,
    validation, latent health, refresh, and the rest of the epoch."""
    table = {}
    for model, totals in parts.items():
        n = max(epochs.get(model, 1), 1)
        row = {
            "steps": (totals.get("train", 0.0) - totals.get("augment", 0.0)) / n,
            "augment": totals.get("augment", 0.0) / n,
            "validation": totals.get("validation", 0.0) / n,
            "latent health": totals.get("latent health", 0.0) / n,
            "refresh": totals.get("refresh", 0.0) / n,
        }
        row["rest"] = totals.get("epoch", 0.0) / n - sum(row.values())
        row["epoch"] = totals.get("epoch", 0.0) / n
        table[model] = row
    return table


def celeba_manifest(folder: Path, csv_path: Path) -> Path:
    """A manifest (path, label = Blond_Hair, split, Male) of the CelebA images in `folder`, written to csv_path."""
    root = find_celeba_root(folder)
    table = read_attributes(root / ATTR_FILE).join(read_partition(root / PARTITION_FILE), how="inner")
    paths = [str((root / IMAGE_DIR / name).resolve()) for name in table.index]
    manifest = pd.DataFrame(
        {"path": paths, "label": table["Blond_Hair"].to_numpy(), "split": table["split"], "Male": table["Male"]}
    )
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(csv_path, index=False)
    return csv_path


def epoch_figures(seconds: dict[str, np.ndarray], warmup_epochs: int, rows_per_epoch: int) -> dict:
    """Median seconds per epoch of each model (the DB-VAE's warm-up and weighted epochs apart) and images per second.

    seconds: model -> its epochs' seconds, in order.
    """
    figures = {}
    for model, values in seconds.items():
        values = np.asarray(values, dtype=float)
        parts = {model: values}
        if model == "dbvae":
            parts = {"dbvae warm-up": values[:warmup_epochs], "dbvae weighted": values[warmup_epochs:]}
        for name, part in parts.items():
            if len(part):
                median = float(np.median(part))
                figures[name] = {
                    "epochs": len(part),
                    "median_s": median,
                    "min_s": float(part.min()),
                    "max_s": float(part.max()),
                    "img_per_s": rows_per_epoch / median,
                }
    return figures


def ratios_to_uniform(figures: dict) -> dict[str, float]:
    """The DB-VAE's median warm-up and weighted epoch over the uniform model's median epoch."""
    if "uniform" not in figures:
        return {}
    base = figures["uniform"]["median_s"]
    return {
        part: figures[f"dbvae {part}"]["median_s"] / base
        for part in ("warm-up", "weighted")
        if f"dbvae {part}" in figures
    }


def compare_runs(run: Path, reference: Path) -> dict[str, bool]:
    """name -> whether this run's file (weights.csv, or one model's test predictions) is bit-identical to the reference's."""
    same = {}
    ours, theirs = pd.read_csv(run / "weights.csv"), pd.read_csv(reference / "weights.csv")
    same["weights.csv"] = ours.equals(theirs)
    ours, theirs = pd.read_csv(run / "predictions_test.csv"), pd.read_csv(reference / "predictions_test.csv")
    for model in ours["model"].unique():
        a = ours.loc[ours["model"] == model, "prob"].to_numpy()
        b = theirs.loc[theirs["model"] == model, "prob"].to_numpy()
        same[f"{model} test predictions"] = len(a) == len(b) and bool(np.array_equal(a, b))
    return same


def main() -> None:
    """Run one fit with its phases timed, then print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="The fit's run folder (replaced if it exists).")
    parser.add_argument("--celeba-folder", type=Path, help="Fit on a manifest of this CelebA folder's images.")
    parser.add_argument("--compare", type=Path, help="A run folder whose test predictions and weights to compare.")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, OMP_NUM_THREADS).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument(
        "--data-only",
        action="store_true",
        help="Stop after the data phase: its time and memory at a size too large to train.",
    )
    args, fit_args = parser.parse_known_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.celeba_folder is not None:
        csv_path = celeba_manifest(args.celeba_folder, args.out.parent / f"{args.out.name}-manifest.csv")
        fit_args = ["--data", str(csv_path), "--groups", "Male", *fit_args]
    phases: list[dict] = []
    instrument(phases, args.data_only)
    parts: dict[str, dict[str, dict[str, float]]] = {}
    cpu_epochs: dict[str, list[float]] = {}
    instrument_epochs(parts, cpu_epochs)
    load_before = os.getloadavg()
    start = time.perf_counter()
    try:
        debias_main.main(["fit", "--out", str(args.out), "--overwrite", "--quiet", *fit_args], standalone_mode=False)
    except SystemExit as exit_:
        if exit_.code:
            sys.exit(exit_.code)
    except DataLoaded:
        data = phases[0]
        print(machine_line(load_before, os.getloadavg()))
        print(
            f"data phase only: {data['seconds']:.1f} s wall, {data['cpu_s']:.1f} s CPU, "
            f"peak RSS {data['peak_rss_gib']:.2f} GiB"
        )
        return
    wall = time.perf_counter() - start
    load_after = os.getloadavg()

    config = json.loads((args.out / "config.json").read_text())
    history = pd.read_csv(args.out / "history.csv")
    sizes = config["dataset"]["sizes"]
    dbvae = history[history["model"] == "dbvae"]
    # The warm-up epochs draw uniformly, so they log no weight statistics.
    warmup = int(dbvae["ess"].isna().sum()) if "ess" in dbvae else len(dbvae)
    wall_seconds = {model: rows["seconds"].to_numpy() for model, rows in history.groupby("model", sort=False)}
    figures = {
        "wall": epoch_figures(wall_seconds, warmup, sizes["train"]),
        "cpu": epoch_figures(cpu_epochs, warmup, sizes["train"]),
    }
    print(machine_line(load_before, load_after))
    print(
        f"data {config['dataset']['name']}: {sizes['train']:,} training, {sizes['valid']:,} validation, "
        f"{sizes['test']:,} test images; weighting {config['weighting_strategy']}; "
        f"{warmup} warm-up + {config['settings']['epochs']} epochs per model"
    )
    print(f"\nwall time {wall:.1f} s, CPU time {time.process_time():.1f} s; peak RSS {peak_rss_gib():.2f} GiB")
    print(f"{'phase':<16}{'wall s':>9}{'CPU s':>9}{'peak RSS GiB':>14}{'load':>7}")
    for phase in phases:
        print(
            f"{phase['phase']:<16}{phase['seconds']:>9.1f}{phase['cpu_s']:>9.1f}"
            f"{phase['peak_rss_gib']:>14.2f}{phase['load']:>7.1f}"
        )
    print("\nseconds per epoch: wall (history.csv) and the process's CPU time; img/s = training rows / median wall")
    print(f"{'model':<16}{'epochs':>7}{'wall median':>13}{'min-max':>12}{'CPU median':>12}{'min-max':>12}{'img/s':>8}")
    for name, row in figures["wall"].items():
        cpu = figures["cpu"].get(name, {})
        print(
            f"{name:<16}{row['epochs']:>7}{row['median_s']:>13.2f}{row['min_s']:>6.1f}-{row['max_s']:<5.1f}"
            f"{cpu.get('median_s', float('nan')):>12.2f}{cpu.get('min_s', float('nan')):>6.1f}-"
            f"{cpu.get('max_s', float('nan')):<5.1f}{row['img_per_s']:>8.0f}"
        )
    epochs = history.groupby("model").size().to_dict()
    breakdown = {clock: epoch_parts_table(parts.get(clock, {}), epochs) for clock in ("wall", "cpu")}
    columns = ("steps", "augment", "validation", "latent health", "refresh", "rest", "epoch")
    for clock in ("wall", "cpu"):
        print(f"\n{clock} seconds per epoch, mean over each model's epochs (steps: forward, loss, backward, optimizer)")
        print(f"{'model':<10}" + "".join(f"{c:>15}" for c in columns))
        for model, row in breakdown[clock].items():
            print(f"{model:<10}" + "".join(f"{row[c]:>15.2f}" for c in columns))
    ratios = {clock: ratios_to_uniform(figures[clock]) for clock in ("wall", "cpu")}
    for clock, by_part in ratios.items():
        if by_part:
            described = ", ".join(f"{part} {ratio:.2f}x" for part, ratio in by_part.items())
            print(f"DB-VAE epoch / uniform epoch ({clock} medians): {described}")
    same = compare_runs(args.out, args.compare) if args.compare else {}
    for name, identical in same.items():
        print(f"{name}: {'bit-identical' if identical else 'DIFFERENT'} to {args.compare}")
    if args.json:
        record = {
            "wall_s": wall,
            "load": [load_before, load_after],
            "phases": phases,
            "epochs": figures,
            "epoch_parts": breakdown,
            "ratios": ratios,
            "identical": same,
            "peak_rss_gib": peak_rss_gib(),
            "torch_threads": torch.get_num_threads(),
            "fit_args": fit_args,
        }
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
