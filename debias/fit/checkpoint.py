"""checkpoint.pt: what a fit has done so far, written after every epoch and read back (RunFolder.checkpoint) to resume it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from debias import __version__
from debias.data import Dataset
from debias.errors import UserError
from debias.run_dir import RUN_FORMAT_VERSION

if TYPE_CHECKING:
    from debias.fit.config import FitConfig
    from debias.fit.trainer import Trainer


@dataclass
class Progress:
    """What a fit has done besides its models' weights; every checkpoint holds it.

    done          model -> epochs finished
    history       the history.csv rows so far
    early_probs   the uniform baseline's P(label = 1) on the training split (strategies that use errors)
    early_errors  which epoch early_probs comes from, and its error rates
    selection     `--weighting auto`'s record, once chosen
    seconds       training time over every session of the fit before this one
    """

    done: dict[str, int] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    early_probs: np.ndarray | None = None
    early_errors: dict | None = None
    selection: dict | None = None
    seconds: float = 0.0

    @classmethod
    def from_checkpoint(cls, state: dict | None) -> Progress:
        """The progress a loaded checkpoint.pt records (an empty one for None)."""
        if state is None:
            return cls()
        return cls(
            done={name: int(n) for name, n in state["epochs_done"].items()},
            history=[dict(row) for row in state["history"]],
            early_probs=state["early_probs"].double().numpy() if "early_probs" in state else None,
            early_errors=json.loads(state["early_errors"]) if "early_errors" in state else None,
            selection=json.loads(state["weighting_selection"]) if "weighting_selection" in state else None,
            seconds=float(state.get("seconds", 0.0)),
        )


def _plain(value):
    """numpy and 0-d torch scalars -> Python numbers, so a checkpoint loads with weights_only=True."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _epoch_span(done: int) -> str:
    return "epoch 1" if done == 1 else f"epochs 1-{done}"


def describe_progress(epochs_done: dict[str, int], epochs: dict[str, int]) -> str:
    """'uniform epochs 1-3, dbvae epoch 1 (of 3 each)' from a checkpoint's epochs_done and each model's epochs.

    Models with different epoch counts (the DB-VAE's warm-up) get theirs each: 'dbvae epoch 1 of 5'.
    """
    shown = {name: done for name, done in epochs_done.items() if done > 0}
    if not shown:
        return "no finished epoch"
    totals = {epochs.get(name) for name in shown}
    if len(totals) == 1:
        return ", ".join(f"{name} {_epoch_span(done)}" for name, done in shown.items()) + f" (of {totals.pop()} each)"
    return ", ".join(f"{name} {_epoch_span(done)} of {epochs.get(name)}" for name, done in shown.items())


def checkpoint_state(
    config: FitConfig,
    trainers: dict[str, Trainer],
    progress: Progress,
    fingerprint: str,
    seconds: float,
    complete: bool,
) -> dict:
    """The contents of checkpoint.pt: tensors and plain types only, so torch.load(weights_only=True) reads it.

    format_version  RUN_FORMAT_VERSION of debias.run_dir
    debias_version  the debias that wrote it
    settings        FitConfig.to_dict() as a JSON string
    dataset         dataset_fingerprint(): ids and labels of every split
    epochs_done     model -> epochs finished (every model of the run, 0 when not started)
    complete        True once every model has finished every epoch
    models          model -> state_dict, for every model with a finished epoch (all, once complete)
    optimizers      model -> Adam state_dict, for the same models
    history         the history.csv rows so far, as dicts of str/int/float
    rng             {"torch": torch.get_rng_state(), "cuda": [per-GPU states] or []}
    seconds         training time so far, over every session of the fit
    early_probs     (only once known) float64 tensor [N]: the uniform baseline's P(label = 1) on the
                    training split after the epoch of early_errors, for strategies that use errors
    early_errors    (with early_probs) JSON string: {"epoch", "error_rate", "majority_error_rate", "informative"}
    weighting_selection  (only for auto fits, once chosen) the selection record as a JSON string
    """
    saved = [name for name in trainers if complete or progress.done.get(name, 0) > 0]
    cuda = any(t.device.type == "cuda" for t in trainers.values())
    state = {
        "format_version": RUN_FORMAT_VERSION,
        "debias_version": __version__,
        "settings": json.dumps(config.to_dict(), default=str),
        "dataset": fingerprint,
        "epochs_done": {name: int(progress.done.get(name, 0)) for name in trainers},
        "complete": bool(complete),
        "models": {name: trainers[name].model.state_dict() for name in saved},
        "optimizers": {name: trainers[name].optimizer.state_dict() for name in saved},
        "history": [{k: _plain(v) for k, v in row.items()} for row in progress.history],
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
        "seconds": float(seconds),
    }
    if progress.early_probs is not None:
        state["early_probs"] = torch.as_tensor(np.asarray(progress.early_probs, dtype=np.float64))
    if progress.early_errors is not None:
        state["early_errors"] = json.dumps(progress.early_errors)
    if progress.selection is not None:
        state["weighting_selection"] = json.dumps(progress.selection)
    return state


def restore(state: dict, trainers: dict[str, Trainer], path: Path) -> None:
    """Load the saved models, optimizers and RNG states of checkpoint `state` (read from `path`) into `trainers`."""
    try:
        for name, model_state in state["models"].items():
            trainers[name].model.load_state_dict(model_state)
        for name, optimizer_state in state["optimizers"].items():
            trainers[name].optimizer.load_state_dict(optimizer_state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"{path} does not match the models of this fit ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); start a new fit with --out NEW_FOLDER"
        ) from None
    torch.set_rng_state(state["rng"]["torch"])
    cuda_states = state["rng"].get("cuda") or []
    on_cuda = any(t.device.type == "cuda" for t in trainers.values())
    if cuda_states and on_cuda and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


FINGERPRINT_IMAGES = 64  # images per split whose pixels enter the fingerprint; all of them would cost seconds on CelebA


def dataset_fingerprint(dataset: Dataset) -> str:
    """A short hash of every split's ids and labels and of evenly spaced images: a resumed fit must see the same data."""
    digest = hashlib.sha256()
    for name in ("train", "valid", "test"):
        split = dataset.split(name)
        digest.update(f"{name}:{len(split)}:{split.image_size}\n".encode())
        digest.update("\n".join(split.sample_ids.tolist()).encode())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        rows = np.unique(np.linspace(0, len(split) - 1, num=min(FINGERPRINT_IMAGES, len(split))).astype(np.int64))
        digest.update(np.ascontiguousarray(split.images[rows]).tobytes())
    return digest.hexdigest()[:20]
