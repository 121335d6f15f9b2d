"""`--weighting auto`: train a short DB-VAE run per candidate strategy and keep one only where validation shows it helps.

Each candidate strategy trains a short DB-VAE run on the same data (`train_candidate`), and so does
uniform sampling, always a candidate: the reference. Every candidate's validation predictions are
compared with uniform's on the same images (debias.weights_check: accuracy by McNemar's test, the
worst class, and the worst --val-groups group by the paired permutation test), and `choose` keeps

- none that loses to uniform beyond noise on any of those figures (do no harm: on real faces whose
  early errors were hard or mislabelled images spread over everyone, Just Train Twice cost 5-9
  points of accuracy; BENCHMARKS.md, "Do the weights help?", "Do no harm");
- only those that raise the criterion beyond noise (p < 0.05): weights that cannot show a gain on
  the user's own validation split are a gamble with the user's accuracy, so uniform is kept;
- among those, the highest criterion, within an accuracy budget (2 points by default,
  `--auto-accuracy-budget`) of the most accurate: measured on the CelebA sample, the joint density
  won on worst-group accuracy while costing 4 points of accuracy, more than a user trading accuracy
  for fairness asks. Ties (to 1e-9) go to the higher accuracy, then to the earlier candidate.

The criterion is worst-class accuracy (the smallest per-label accuracy) by default: it needs no group
labels, and a strategy that helps a rare group of one class raises that class's accuracy; or
worst-group accuracy over the given attributes crossed with the label, when the user supplies group
labels for the validation split only (`--val-groups`), as group-robustness methods (JTT, DFR) tune
on a labelled validation set. Training never sees them.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from debias.data import Dataset
from debias.distributed import DistContext
from debias.fit.config import FitConfig
from debias.fit.draws import DensityDraw
from debias.fit.evaluation import sharded_predict
from debias.fit.trainer import Trainer
from debias.groups import accuracy_by_group, group_labels
from debias.paired import SIGNIFICANCE
from debias.weighting import weight_summary
from debias.weights_check import WORST_CLASS, WORST_GROUP, compare_with_uniform

UNIFORM = "uniform"


def worst_class_accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """The smallest per-label accuracy: the worst group when the groups are the labels."""
    labels = np.asarray(labels)
    return accuracy_by_group(labels, pred, pd.Series(labels))["worst_group_accuracy"]


def validation_figures(
    labels: np.ndarray,
    probs: np.ndarray,
    attributes: pd.DataFrame | None = None,
    val_groups: list[str] | tuple[str, ...] = (),
) -> dict:
    """accuracy, worst_class_accuracy and (with val_groups) worst_group_accuracy / worst_group of predictions."""
    labels = np.asarray(labels)
    pred = (np.asarray(probs) >= 0.5).astype(np.int64)
    figures = {"accuracy": float((pred == labels).mean()), WORST_CLASS: worst_class_accuracy(labels, pred)}
    if val_groups:
        by_group = accuracy_by_group(labels, pred, group_labels(attributes, list(val_groups), labels))
        figures[WORST_GROUP] = by_group["worst_group_accuracy"]
        figures["worst_group"] = by_group["worst_group"]
    return figures


def choose(candidates: dict[str, dict], criterion: str, accuracy_budget: float | None = None) -> str:
    """The candidate with the highest `criterion`, ties broken by accuracy, then by order.

    With `accuracy_budget` (a fraction, 0.02 = 2 points), only the candidates whose accuracy is at
    most that far below the most accurate candidate's compete.
    """
    if not candidates:
        raise ValueError("no candidate strategies to choose from")
    if accuracy_budget is not None:
        top = max(figures["accuracy"] for figures in candidates.values())
        candidates = {name: f for name, f in candidates.items() if f["accuracy"] >= top - accuracy_budget - 1e-9}
    best, best_key = None, None
    for name, figures in candidates.items():
        key = (round(figures[criterion], 9), round(figures["accuracy"], 9))
        if best_key is None or key > best_key:
            best, best_key = name, key
    return best


def earns_its_place(check: dict, criterion: str) -> bool:
    """Whether a candidate's comparison with uniform (debias.weights_check) shows no loss and a gain in `criterion`,
    each beyond noise."""
    gain = check[criterion]
    return not check["loses"] and gain["difference"] > 0 and gain["p_value"] < SIGNIFICANCE


def choose_over_uniform(candidates: dict[str, dict], criterion: str, accuracy_budget: float | None = None) -> str:
    """`choose` among uniform and the candidates that earn their place against it (`earns_its_place`,
    their figures' "versus_uniform"); uniform when none does."""
    earned = {
        name: figures
        for name, figures in candidates.items()
        if name != UNIFORM and earns_its_place(figures["versus_uniform"], criterion)
    }
    if not earned:
        return UNIFORM
    return choose({UNIFORM: candidates[UNIFORM], **earned}, criterion, accuracy_budget)


@dataclass
class HeadStart:
    """A candidate's short run, the DB-VAE's first weighted epochs of a fit with that strategy: once it is chosen,
    the fit goes on from here instead of training those epochs again."""

    model: dict
    optimizer: dict
    history: list[dict]
    rng: torch.Tensor
    cuda_rng: list | None


def _rng_state(device: torch.device) -> tuple[torch.Tensor, list | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if device.type == "cuda" else None


def _set_rng_state(rng: torch.Tensor, cuda_rng: list | None) -> None:
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)


def train_candidate(
    strategy: str,
    dataset: Dataset,
    config: FitConfig,
    device: torch.device,
    early_probs: np.ndarray | None,
    progress: bool,
    ctx: DistContext,
    warmed_up: Trainer,
) -> tuple[np.ndarray, dict, HeadStart]:
    """One short run of `--weighting auto`: the first `config.short_run_epochs` weighted epochs of the fit's DB-VAE
    with `strategy`'s weights, continuing from `warmed_up` (the fit's DB-VAE after its warm-up, copied,
    never changed) with the global RNG as it is now, so they are exactly the epochs a fit with
    `--weighting STRATEGY` trains. Returns its P(label = 1) on the validation split, the
    weight_summary of the last weights it drew by, and its state (HeadStart)."""
    rng = _rng_state(device)
    candidate = replace(config, weighting=replace(config.weighting, strategy=strategy))
    draw = DensityDraw("dbvae", dataset, candidate, device, ctx)
    draw.early_probs = early_probs
    trainer = Trainer(draw, label=strategy)
    trainer.model.load_state_dict(warmed_up.model.state_dict())
    # A deep copy: Adam's load_state_dict keeps the given moment tensors when their dtype and
    # device already fit, so the candidate's steps would update the fit's own optimizer state.
    trainer.optimizer.load_state_dict(copy.deepcopy(warmed_up.optimizer.state_dict()))
    _set_rng_state(*rng)  # building the network reseeded the global RNG; the fit's stream goes on from here
    first = draw.warmup_epochs + 1
    history = trainer.train(progress, first_epoch=first, last_epoch=first + config.short_run_epochs - 1)
    probs = sharded_predict(trainer.model, dataset.valid.images, config.eval_batch_size, device, trainer.amp, ctx)
    head_start = HeadStart(trainer.model.state_dict(), trainer.optimizer.state_dict(), history, *_rng_state(device))
    return probs, weight_summary(draw.weights), head_start


def select_strategy(
    dataset: Dataset,
    config: FitConfig,
    device: torch.device,
    early_probs: np.ndarray | None,
    progress: bool,
    ctx: DistContext,
    warmed_up: Trainer,
) -> tuple[dict, HeadStart]:
    """Run every candidate strategy and uniform sampling briefly and choose by validation figures (`choose_over_uniform`).

    Every candidate starts from `warmed_up`, the fit's DB-VAE after its uniform warm-up (the
    warm-up does not depend on the strategy, so it is trained once for all of them), and from the
    same global RNG state.

    Returns the record written to config.json as "weighting_selection" (criterion, val_groups,
    epochs, chosen, and per candidate its validation figures, ESS, max/min weight ratio, seconds and,
    but for uniform, its comparison with uniform, "versus_uniform", debias.weights_check), and the
    chosen candidate's HeadStart: the fit's DB-VAE goes on from it (and from its RNG state), so it
    trains exactly as it would with `--weighting CHOSEN`. Under DDP every rank gets rank 0's record,
    so all train the same choice.
    """
    rng = _rng_state(device)
    valid = dataset.valid
    criterion = WORST_GROUP if config.val_groups else WORST_CLASS
    candidates, probs, head_starts = {}, {}, {}
    for strategy in config.candidates:
        start = time.perf_counter()
        _set_rng_state(*rng)
        probs[strategy], stats, head_starts[strategy] = train_candidate(
            strategy, dataset, config, device, early_probs, progress, ctx, warmed_up
        )
        figures = validation_figures(valid.labels, probs[strategy], valid.attributes, config.val_groups)
        figures.update(ess=stats["ess"], max_min_ratio=stats["max_min_ratio"], seconds=time.perf_counter() - start)
        candidates[strategy] = figures
    for strategy in candidates:
        if strategy != UNIFORM:
            candidates[strategy]["versus_uniform"] = compare_with_uniform(
                valid.labels, probs[UNIFORM], probs[strategy], valid.attributes, config.val_groups
            )
    record = ctx.broadcast_object(
        {
            "criterion": criterion,
            "val_groups": list(config.val_groups),
            "epochs": config.short_run_epochs,
            "accuracy_budget": config.auto_accuracy_budget,
            "chosen": choose_over_uniform(candidates, criterion, config.auto_accuracy_budget / 100),
            "candidates": candidates,
        }
    )
    return record, head_starts[record["chosen"]]
