"""Orchestration of `debias fit`: settings -> dataset -> trained models -> run directory.

The run directory (the contract other tools rely on):
  weights.csv            sample_id, weight (mean 1), log_density, label -- one row per training sample
  config.json            resolved settings, dataset description, per-epoch weight stats, results
  checkpoint.pt          state dicts of both models (loads with torch.load(weights_only=True))
  latents.npy            final latent means of the training set (float32 [N, k]), for re-weighting
  predictions_test.csv   test-split predictions of every model, with ids and ground-truth attributes
  predictions_valid.csv  the same on the validation split
  history.csv            one row per model and epoch: losses, accuracies, weight statistics
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from debias import __version__, io
from debias.data import Dataset, ImageSplit, load_dataset
from debias.errors import UserError
from debias.models import DBVAE, DBVAELoss, Classifier, classifier_loss
from debias.report.metrics import accuracy_by_group, group_labels
from debias.sampling import epoch_generator, uniform_indices, weighted_indices
from debias.train import UInt8ImageDataset, encode_all, iterate_batches, predict_proba, train_one_epoch
from debias.weights import SampleWeights
from debias.weighting import WeightingSettings, training_weights, validate, weight_summary

RUN_FORMAT_VERSION = 1
MODELS = ("uniform", "dbvae", "sampler", "oracle")


@dataclass(frozen=True)
class FitConfig:
    """Every setting of a fit; written to config.json as resolved."""

    data: str = "synthfaces"
    data_options: dict = field(default_factory=dict)
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 1e-3
    latent_dim: int = 100
    # KL weight relative to the mean-absolute reconstruction error; small, as in the paper's code,
    # so the latent keeps the detail the histograms need instead of collapsing to the prior.
    beta: float = 0.0005
    image_size: int = 64
    width: int = 16
    weighting: WeightingSettings = field(default_factory=WeightingSettings)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    # Models trained besides the DB-VAE (always trained): see _Trainer for what each one is.
    models: tuple[str, ...] = MODELS
    # "all", "positives" or None (the dataset's own choice): which samples the VAE terms train on.
    vae_on: str | None = None
    eval_batch_size: int = 512

    def to_dict(self) -> dict:
        """Plain nested dict for config.json."""
        d = asdict(self)
        d["weighting"] = self.weighting.to_dict()
        return d


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(name)
    raise UserError(f"unknown device {name!r}; use auto, cpu or cuda")


def check_config(config: FitConfig) -> None:
    """Raise UserError for settings that cannot work, before any data is loaded."""
    problems = []
    if config.epochs < 1:
        problems.append(f"--epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 2:
        problems.append(f"--batch-size must be >= 2, got {config.batch_size}")
    if config.latent_dim < 1:
        problems.append(f"--latent-dim must be >= 1, got {config.latent_dim}")
    if config.beta < 0:
        problems.append(f"--beta must be >= 0, got {config.beta}")
    if config.image_size < 16 or config.image_size % 16:
        problems.append(f"--image-size must be a multiple of 16 and at least 16, got {config.image_size}")
    if config.vae_on not in (None, "all", "positives"):
        problems.append(f"--vae-on must be all or positives, got {config.vae_on!r}")
    unknown = [m for m in config.models if m not in MODELS]
    if unknown:
        problems.append(f"unknown model {', '.join(unknown)}; --models takes a comma-separated subset of {', '.join(MODELS)}")
    if config.learning_rate <= 0:
        problems.append(f"--lr must be > 0, got {config.learning_rate}")
    try:
        validate(config.weighting)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise UserError("; ".join(problems))


def default_run_dir(data: str) -> Path:
    """runs/<timestamp>-<dataset> under the current folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{Path(data).stem}"


def prepare_run_dir(out: str | Path | None, data: str, overwrite: bool) -> Path:
    """Create the run folder; refuse one that already holds files unless `overwrite`."""
    run_dir = Path(out) if out is not None else default_run_dir(data)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file, not a folder; choose another path")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        raise UserError(f"output folder {run_dir} already exists and is not empty; choose another --out or pass --overwrite")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {run_dir}: {exc.strerror}; choose another --out") from None
    return run_dir


def _check_dataset(dataset: Dataset) -> None:
    for split in ("train", "valid", "test"):
        labels = dataset.split(split).labels
        if len(labels) == 0:
            raise UserError(f"the {split} split of {dataset.name} is empty; add images to it or use a larger --limit")
    if len(np.unique(dataset.train.labels)) < 2:
        raise UserError(f"the training split of {dataset.name} has one class only; a classifier needs both labels 0 and 1")


def _evaluate(model, split: ImageSplit, dataset: Dataset, config: FitConfig, device, amp) -> tuple[np.ndarray, dict]:
    prob = predict_proba(model, split.images, config.eval_batch_size, device, amp)
    pred = (prob >= 0.5).astype(np.int64)
    groups = group_labels(split.attributes, dataset.group_columns, split.labels)
    return prob, accuracy_by_group(split.labels, pred, groups)


def _predictions_frame(split: ImageSplit, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = []
    for model_name, prob in probs.items():
        frame = pd.DataFrame(
            {"model": model_name, "sample_id": split.sample_ids, "label": split.labels, "prob": prob, "pred": (prob >= 0.5).astype(int)}
        )
        frames.append(pd.concat([frame, split.attributes.add_prefix("attr_")], axis=1))
    return pd.concat(frames, ignore_index=True)


def group_balanced_weights(split: ImageSplit, group_columns: list[str]) -> torch.Tensor:
    """The oracle's weights: every group (group attributes x label) gets the same total weight, mean 1."""
    groups = group_labels(split.attributes, group_columns, split.labels)
    counts = groups.map(groups.value_counts())
    w = torch.tensor((1.0 / counts).to_numpy(), dtype=torch.float64)
    return w * (len(w) / w.sum())


class _Trainer:
    """Trains one model of the run epoch by epoch; the model's name decides how rows are drawn.

    uniform  every training row once per epoch, in random order
    dbvae    the DB-VAE, rows drawn by weights recomputed from its latents at every epoch start
    sampler  a plain classifier trained by an ordinary DataLoader loop with torch's
             WeightedRandomSampler over the exported weights.csv (proves the file helps a
             pipeline that is not ours)
    oracle   a plain classifier drawing rows so that every true group has equal mass (uses the
             group labels, which debias itself never does)
    """

    def __init__(self, name: str, dataset: Dataset, config: FitConfig, device: torch.device):
        self.name, self.dataset, self.config, self.device = name, dataset, config, device
        self.amp = config.amp and device.type == "cuda"
        torch.manual_seed(config.seed)
        if name == "dbvae":
            self.model = DBVAE(config.latent_dim, config.image_size, config.width)
            self.criterion = DBVAELoss(config.beta, dataset.vae_on_all)
        else:
            self.model = Classifier(config.image_size, config.width)
            self.criterion = classifier_loss
        self.model.to(device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.weights: torch.Tensor | None = None
        self.log_density: torch.Tensor | None = None
        self.latents: torch.Tensor | None = None
        self.weights_file: Path | None = None
        if name == "oracle":
            self.weights = group_balanced_weights(dataset.train, dataset.group_columns)

    def refresh_weights(self) -> dict[str, float]:
        """DB-VAE weights from the latents of the current model on the whole training split."""
        train = self.dataset.train
        self.latents = encode_all(self.model, train.images, self.config.eval_batch_size, self.device, self.amp)
        labels = torch.tensor(train.labels)
        self.weights, score = training_weights(self.latents, labels, self.config.weighting, self.dataset.vae_on_all)
        self.log_density = -score
        return weight_summary(self.weights)

    def _batches(self, epoch: int, row: dict):
        train, config = self.dataset.train, self.config
        if self.name == "sampler":
            sampler = SampleWeights.load(self.weights_file).to_sampler(train.sample_ids, seed=config.seed * 1000 + epoch)
            return torch.utils.data.DataLoader(
                UInt8ImageDataset(train.images, train.labels), batch_size=config.batch_size, sampler=sampler,
                pin_memory=self.device.type == "cuda",
            )
        generator = epoch_generator(config.seed, epoch, stream=MODELS.index(self.name))
        if self.name == "uniform":
            indices = uniform_indices(len(train), generator)
        else:
            if self.name == "dbvae":
                row.update(self.refresh_weights())
            else:
                row.update(weight_summary(self.weights))
            indices = weighted_indices(self.weights, len(train), generator)
        return iterate_batches(train.images, train.labels, indices.numpy(), config.batch_size, self.device)

    def run_epoch(self, epoch: int, bar) -> dict:
        """Draw this epoch's rows, train on them, and return the history row."""
        row: dict = {"model": self.name, "epoch": epoch}
        start = time.perf_counter()
        batches = self._batches(epoch, row)
        terms = train_one_epoch(self.model, self.criterion, self.optimizer, batches, self.device, self.amp, bar)
        if not np.isfinite(terms["total"]):
            raise UserError(
                f"the {self.name} loss became {terms['total']} in epoch {epoch}; lower --lr or --beta and try again"
            )
        row.update({f"train_{k}": v for k, v in terms.items()})
        _, valid = _evaluate(self.model, self.dataset.valid, self.dataset, self.config, self.device, self.amp)
        row.update(valid_accuracy=valid["accuracy"], valid_worst_group_accuracy=valid["worst_group_accuracy"])
        row["seconds"] = time.perf_counter() - start
        return row

    def train(self, progress: bool) -> list[dict]:
        """All epochs, with one progress bar; returns the history rows."""
        steps = self.config.epochs * -(-len(self.dataset.train) // self.config.batch_size)
        rows = []
        with tqdm(total=steps, desc=f"{self.name:>7}", unit="batch", disable=not progress) as bar:
            for epoch in range(1, self.config.epochs + 1):
                rows.append(self.run_epoch(epoch, bar))
                bar.set_postfix(epoch=epoch, valid_acc=f"{rows[-1]['valid_accuracy']:.3f}",
                                worst=f"{rows[-1]['valid_worst_group_accuracy']:.3f}")
        return rows


def run_fit(config: FitConfig, out: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Train the uniform baseline and the DB-VAE, write the run directory, return the results."""
    check_config(config)
    device = resolve_device(config.device)
    run_dir = prepare_run_dir(out, config.data, overwrite)
    try:
        return _fit_into(run_dir, config, device, progress)
    except BaseException:
        # A fit that failed before writing anything leaves no empty run folder behind.
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def _fit_into(run_dir: Path, config: FitConfig, device: torch.device, progress: bool) -> dict:
    started = time.perf_counter()
    dataset = load_dataset(config.data, image_size=config.image_size, **config.data_options)
    _check_dataset(dataset)
    if config.vae_on is not None:
        dataset.vae_on_all = config.vae_on == "all"
    if dataset.train.image_size != config.image_size:
        raise UserError(f"dataset images are {dataset.train.image_size}px but --image-size is {config.image_size}")

    names = [m for m in MODELS if m in config.models and (m != "oracle" or dataset.group_columns)]
    trainers = {name: _Trainer(name, dataset, config, device) for name in names}
    history: list[dict] = []
    for name in ("uniform", "dbvae"):
        if name in trainers:
            history += trainers[name].train(progress)

    dbvae = trainers["dbvae"]
    final_stats = dbvae.refresh_weights()  # the weights shipped are those of the final model
    train = dataset.train
    io.write_csv(
        run_dir / "weights.csv",
        pd.DataFrame({
            "sample_id": train.sample_ids,
            "weight": dbvae.weights.cpu().numpy(),
            "log_density": dbvae.log_density.cpu().numpy(),
            "label": train.labels,
        }),
    )
    io.write_npy(run_dir / "latents.npy", dbvae.latents.cpu().numpy().astype(np.float32))
    for name in ("sampler", "oracle"):
        if name in trainers:
            trainers[name].weights_file = run_dir / "weights.csv"
            history += trainers[name].train(progress)

    results: dict = {}
    for split_name in ("valid", "test"):
        split = dataset.split(split_name)
        probs = {}
        for name, trainer in trainers.items():
            probs[name], metrics = _evaluate(trainer.model, split, dataset, config, device, trainer.amp)
            results.setdefault(split_name, {})[name] = metrics
        io.write_csv(run_dir / f"predictions_{split_name}.csv", _predictions_frame(split, probs))
    io.write_csv(run_dir / "history.csv", pd.DataFrame(history))
    io.write_torch(
        run_dir / "checkpoint.pt",
        {
            "format_version": RUN_FORMAT_VERSION,
            "epoch": config.epochs,
            "models": {name: t.model.state_dict() for name, t in trainers.items()},
            "optimizers": {name: t.optimizer.state_dict() for name, t in trainers.items()},
        },
    )
    summary = {
        "format_version": RUN_FORMAT_VERSION,
        "debias_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "settings": config.to_dict(),
        "device": str(device),
        "torch_version": torch.__version__,
        "platform": platform.platform(),
        "dataset": {
            "name": dataset.name,
            "target": dataset.target,
            "group_columns": dataset.group_columns,
            "vae_on_all": dataset.vae_on_all,
            "sizes": {s: len(dataset.split(s)) for s in ("train", "valid", "test")},
            "info": dataset.info,
        },
        "final_weights": final_stats,
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    io.write_json(run_dir / "config.json", summary)
    summary["run_dir"] = str(run_dir)
    return summary
