"""Orchestration of `debias fit`: settings -> dataset -> trained models -> run directory.

The run directory (the contract other tools rely on):
  weights.csv            sample_id, weight (mean 1), log_density, label -- one row per training sample
  config.json            resolved settings, dataset description, per-epoch weight stats, results
  checkpoint.pt          state dicts of every model (loads with torch.load(weights_only=True))
  latents.npy            final latent means of the training set (float32 [N, k]), for re-weighting
  predictions_test.csv   test-split predictions of every model, with ids and ground-truth attributes
  predictions_valid.csv  the same on the validation split
  history.csv            one row per model and epoch: losses, accuracies, weight statistics
  early_probs.npy        (strategies that use errors) the uniform baseline's P(label = 1) on the
                         training split after the epoch config.json names ("early_errors"), rows as
                         in weights.csv

Weighting strategies (debias.weighting) that use the early classifier's errors read them from the
uniform baseline, which is then always trained. `--weighting auto` (debias.selection) trains one
short DB-VAE run per candidate strategy after the uniform baseline and before the DB-VAE, and keeps
the one with the best validation figure; the choice and every candidate's figures go into
config.json ("weighting_selection") and the checkpoint.

Fits are resumable. config.json is written with "status": "running" once the dataset is loaded,
and checkpoint.pt after every epoch of every model (see `checkpoint_state` for its keys);
config.json gets its results, and "status": "complete", last of all. `resume_fit` (`debias fit
--resume RUN`) continues from the checkpoint with the saved settings and ends with the same files
an uninterrupted fit writes: the global torch RNG state is saved with each checkpoint and every
epoch's draw is seeded by (seed, epoch, model), so on the same device the resumed fit repeats the
uninterrupted one exactly. An auto fit interrupted during its candidate runs (which keep no
checkpoint of their own) starts the candidate phase again on resume, with the same result.

Under torchrun (debias.distributed) every rank runs this same orchestration on a DistContext: the
models train under DistributedDataParallel, each rank takes its share of every epoch's draw
(debias.sampling.rank_share) with a per-rank batch of batch_size / world_size, latents and
predictions are computed on batch-aligned shards and gathered, the weights come from
debias.weighting.sharded, and only rank 0 writes the run folder. With one process the context is
debias.distributed.SINGLE and every step is the single-process code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import platform
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from debias import __version__, io
from debias.distributed import SINGLE, DistContext, session
from debias.data import Dataset, ImageSplit, load_dataset
from debias.data.columns import parse_names
from debias.errors import UserError
from debias.models import DBVAE, DBVAELoss, Classifier, classifier_loss
from debias.report.metrics import accuracy_by_group, group_labels
from debias.run_dir import RUN_FORMAT_VERSION, check_format_version, read_run_config
from debias.sampling import epoch_generator, rank_share, uniform_indices, weighted_indices
from debias.train import UInt8ImageDataset, encode_all, iterate_batches, predict_proba, train_one_epoch
from debias.selection import DEFAULT_CANDIDATES, WORST_CLASS, WORST_GROUP, choose, validation_figures
from debias.weights import DistributedWeightedSampler, SampleWeights
from debias.weighting import AUTO, STRATEGIES, WeightingSettings, needs_errors, training_weights, validate, weight_summary
from debias.weighting.errors import early_error_rates
from debias.weighting.sharded import sharded_training_weights

MODELS = ("uniform", "dbvae", "sampler", "oracle")
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
RUN_FILES = (CHECKPOINT, CONFIG, "weights.csv", "latents.npy", "predictions_test.csv", "predictions_valid.csv", "history.csv")
EARLY_PROBS = "early_probs.npy"  # only with strategies that use errors
REPORT_FILES = ("report.html", "report.json")  # written by `debias fit --report` or `debias report`
# Dataset options that change how data is read, never which data: a resumed fit may use others.
RUNTIME_DATA_OPTIONS = ("cache_dir", "workers", "progress")
# Settings (FitConfig fields, as the command line names them) that change how a fit runs, not what it
# trains: a resumed fit takes them from the command line when given there.
RUNTIME_SETTINGS = {"device": "device", "compile": "compile_model", "eval_batch_size": "eval_batch_size"}


@dataclass(frozen=True)
class FitConfig:
    """Every setting of a fit; written to config.json as resolved."""

    data: str = "synthfaces"
    data_options: dict = field(default_factory=dict)
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 1e-3
    latent_dim: int = 100
    # KL weight relative to the mean-absolute reconstruction error. Measured on synthfaces
    # (BENCHMARKS.md): at the lab code's 0.0005 the latent spreads over every dimension and the
    # rare faces barely stand out in the histograms; at 0.01 the uninformative dimensions settle
    # on the prior and the histograms of the rest upweight all three rare subgroups.
    beta: float = 0.01
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
    # --weighting auto: the strategies tried (empty: debias.selection.DEFAULT_CANDIDATES), the
    # epochs of each short run, and the validation attributes that define groups for the choice
    # (empty: choose by worst-class accuracy). Two epochs: enough for the weights to have moved
    # the model (the first epoch of a DB-VAE draws by the weights of an untrained encoder).
    auto_strategies: tuple[str, ...] = ()
    auto_epochs: int = 2
    val_groups: tuple[str, ...] = ()
    # Percentage points of validation accuracy a candidate may lose against the most accurate one
    # and still be chosen (debias.selection.choose).
    auto_accuracy_budget: float = 2.0
    # Train through torch.compile (evaluation and encoding stay eager). Off by default: compiling
    # costs about 30 s per model on a CPU, more than a small fit trains, and needs a C++ compiler.
    compile: bool = False

    def to_dict(self) -> dict:
        """Plain nested dict for config.json."""
        d = asdict(self)
        d["weighting"] = self.weighting.to_dict()
        d["models"] = list(self.models)
        d["auto_strategies"] = list(self.auto_strategies)
        d["val_groups"] = list(self.val_groups)
        return d

    @property
    def candidates(self) -> tuple[str, ...]:
        """The strategies `--weighting auto` tries."""
        return tuple(self.auto_strategies) or DEFAULT_CANDIDATES

    @property
    def uses_errors(self) -> bool:
        """Whether some strategy of this fit (the chosen one, or any auto candidate) reads the early errors."""
        if self.weighting.strategy == AUTO:
            return any(needs_errors(name) for name in self.candidates)
        return needs_errors(self.weighting.strategy)

    @classmethod
    def from_dict(cls, settings: dict) -> FitConfig:
        """The inverse of to_dict (config.json's "settings"); TypeError/ValueError on keys it does not know."""
        d = dict(settings)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        if "weighting" in d:
            d["weighting"] = WeightingSettings(**d["weighting"])
        for key in ("models", "auto_strategies", "val_groups"):
            if key in d:
                d[key] = tuple(d[key])
        if "data_options" in d:
            d["data_options"] = dict(d["data_options"])
        return cls(**d)


def resolve_device(name: str, ctx: DistContext = SINGLE) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' or 'cuda:N' without that GPU is a user error.

    Under torchrun every rank takes its own GPU, cuda:LOCAL_RANK, for 'auto' and 'cuda'.
    """
    if ctx.distributed:
        return _rank_device(name, ctx)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was requested but no CUDA GPU is available; use --device cpu or auto")
        index = int(match.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
        return torch.device(name)
    raise UserError(f"unknown device {name!r}; use --device auto, cpu, cuda or cuda:N")


def _rank_device(name: str, ctx: DistContext) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        if re.fullmatch(r"cuda:\d+", name):
            raise UserError(f"--device {name} cannot be used under torchrun, where each process takes the GPU of its "
                            "LOCAL_RANK; use --device cuda (or auto)")
        raise UserError(f"unknown device {name!r}; use --device auto, cpu or cuda")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name} was requested but no CUDA GPU is available; use --device cpu or auto")
    count = torch.cuda.device_count()
    if ctx.local_rank >= count:
        raise UserError(f"torchrun started more processes on this machine than it has GPUs ({count}): process "
                        f"{ctx.local_rank} has none. Pass --nproc_per_node {count} or less")
    return torch.device("cuda", ctx.local_rank)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_config(config: FitConfig, world_size: int = 1) -> None:
    """Raise UserError for settings that cannot work, before any data is loaded; one message lists them all.

    `world_size`: the processes of a torchrun launch, among which the batch is split.
    """
    problems = []
    for option, value in (("--lr", config.learning_rate), ("--beta", config.beta), ("--alpha", config.weighting.alpha),
                          ("--cap", config.weighting.cap)):
        if _is_number(value) and not math.isfinite(value):
            problems.append(f"{option} must be a finite number, got {value}")
    if config.epochs < 1:
        problems.append(f"--epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 2:
        problems.append(f"--batch-size must be >= 2 (batch norm needs two samples), got {config.batch_size}")
    elif world_size > 1 and (config.batch_size % world_size or config.batch_size // world_size < 2):
        problems.append(
            f"--batch-size {config.batch_size} is the batch of all {world_size} processes together: it must be a "
            f"multiple of {world_size} with at least 2 per process (batch norm); use e.g. "
            f"--batch-size {max(2, -(-config.batch_size // world_size)) * world_size}"
        )
    if config.eval_batch_size < 1:
        problems.append(f"--eval-batch-size must be >= 1, got {config.eval_batch_size}")
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
    weighting = config.weighting
    if weighting.alpha < 0:
        problems.append(f"--alpha must be >= 0 (0 is the paper's uniform-over-latent-space limit), got {weighting.alpha}")
    if weighting.bins < 2:
        problems.append(f"--bins must be >= 2 (one bin cannot tell rare from common), got {weighting.bins}")
    if weighting.cap is not None and weighting.cap < 1:
        problems.append(f"--cap must be >= 1 (a multiple of the mean weight), got {weighting.cap}")
    auto = weighting.strategy == AUTO
    if auto:
        bad = [name for name in config.auto_strategies if name not in STRATEGIES]
        if bad:
            problems.append(f"--auto-strategies: unknown strategy {', '.join(bad)}; choose from {', '.join(STRATEGIES)}")
        if config.auto_epochs < 1:
            problems.append(f"--auto-epochs must be >= 1, got {config.auto_epochs}")
        if not 0 <= config.auto_accuracy_budget <= 100:
            problems.append(f"--auto-accuracy-budget must be between 0 and 100 points, got {config.auto_accuracy_budget:g}")
    else:
        if config.auto_strategies:
            problems.append("--auto-strategies only applies to --weighting auto")
        if config.val_groups:
            problems.append("--val-groups only applies to --weighting auto (it chooses the strategy); drop it or add --weighting auto")
    if config.uses_errors and isinstance(weighting.errors_epoch, int) and weighting.errors_epoch > config.epochs:
        problems.append(
            f"--errors-epoch {weighting.errors_epoch} is after the last epoch ({config.epochs}) of the uniform baseline whose "
            "errors it reads; lower it or raise --epochs"
        )
    if not problems:
        try:
            validate(weighting, allow_auto=True)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError("; ".join(problems))


def default_run_dir(data: str) -> Path:
    """runs/<timestamp>-<dataset> under the current folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{Path(data).stem}"


def _check_writable(run_dir: Path, what_to_do: str = "choose another --out") -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {run_dir}: {exc.strerror or exc}; {what_to_do}") from None


def prepare_run_dir(out: str | Path | None, data: str, overwrite: bool) -> Path:
    """Create the run folder; refuse one that already holds files unless `overwrite`."""
    run_dir = Path(out) if out is not None else default_run_dir(data)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file, not a folder; choose another path")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        unfinished = (run_dir / CONFIG).is_file() and not _is_complete(run_dir)
        hint = f", or `debias fit --resume {run_dir}` to continue the unfinished fit in it" if unfinished else ""
        raise UserError(
            f"output folder {run_dir} already exists and is not empty; choose another --out or pass --overwrite{hint}"
        )
    _check_writable(run_dir)
    return run_dir


def _is_complete(run_dir: Path) -> bool:
    try:
        config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "results" in config


def _check_dataset(dataset: Dataset) -> None:
    for split in ("train", "valid", "test"):
        labels = dataset.split(split).labels
        if len(labels) == 0:
            raise UserError(f"the {split} split of {dataset.name} is empty; add images to it or use a larger --limit")
    present = np.unique(dataset.train.labels)
    if len(present) < 2:
        raise UserError(
            f"the training split of {dataset.name} has one class only (every label is {int(present[0])}); "
            "a classifier needs training images of both labels 0 and 1"
        )


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


def sharded_predict(model, images: np.ndarray, config: FitConfig, device: torch.device, amp: bool,
                    ctx: DistContext = SINGLE) -> np.ndarray:
    """predict_proba over every image; under DDP each rank predicts its share and all ranks get every row.

    Shares are whole batches of eval_batch_size, so each rank runs batches a single process would
    run, and the gathered probabilities are the same bits on every rank.
    """
    if not ctx.distributed:
        return predict_proba(model, images, config.eval_batch_size, device, amp)
    rows = ctx.shard(len(images), align=config.eval_batch_size)
    if rows.stop > rows.start:
        local = torch.from_numpy(predict_proba(model, images[rows], config.eval_batch_size, device, amp))
    else:
        local = torch.empty(0, dtype=torch.float64)
    return ctx.all_gather_rows(local.to(device)).cpu().numpy()


def _evaluate(model, split: ImageSplit, dataset: Dataset, config: FitConfig, device, amp,
              ctx: DistContext = SINGLE) -> tuple[np.ndarray, dict]:
    prob = sharded_predict(model, split.images, config, device, amp, ctx)
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


class NonFiniteLoss(UserError):
    """A model's loss or parameters stopped being finite; raised before that epoch is checkpointed."""


class CompileFailed(UserError):
    """torch.compile (--compile) could not compile a model."""


def _is_compile_error(exc: BaseException) -> bool:
    import torch._dynamo.exc  # imported only once a compiled model failed: it is slow to import

    kinds: list[type] = [torch._dynamo.exc.TorchDynamoException]  # BackendCompilerFailed, InductorError, ...
    try:
        import torch._inductor.exc as inductor_exc

        # A missing compiler can surface unwrapped when the backward pass compiles lazily.
        kinds += [inductor_exc.InvalidCxxCompiler, inductor_exc.CppCompileError]
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, tuple(kinds))


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fit; str() says what the run folder keeps and how to resume it."""

    def __init__(self, run_dir: Path, message: str):
        super().__init__(message)
        self.run_dir = run_dir


def _finite_state(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def cosine_learning_rate(base: float, epoch: int, epochs: int) -> float:
    """Learning rate of `epoch` (1-based): cosine annealing from `base` over the fit, one step per epoch.

    Without annealing the classifiers end wherever the last minibatches left them: on synthfaces
    the worst-group accuracy of the same model moved 20-40 points from one epoch to the next.
    A function of the epoch alone, so a resumed fit gets the same rates with no scheduler state.
    """
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


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

    def __init__(self, name: str, dataset: Dataset, config: FitConfig, device: torch.device, label: str | None = None,
                 ctx: DistContext = SINGLE):
        self.name, self.dataset, self.config, self.device, self.ctx = name, dataset, config, device, ctx
        self.label = label or name  # shown on the progress bar
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
        # What train_one_epoch runs: the model, under DDP with torchrun and compiled with --compile.
        # Encoding, prediction and checkpoints use the plain model, so the DB-VAE's encode/classify
        # are reachable and state_dict keys carry no "module." or "_orig_mod." prefix.
        self.train_model: torch.nn.Module = self.model
        if ctx.distributed:
            self.train_model = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.weights: torch.Tensor | None = None
        self.log_density: torch.Tensor | None = None
        self.latents: torch.Tensor | None = None
        self.weights_file: Path | None = None
        # The DB-VAE's strategy (an auto fit sets the chosen one before training it) and the early
        # classifier's P(label = 1) on the training split, for the strategies that use errors.
        self.weighting: WeightingSettings = config.weighting
        self.early_probs: np.ndarray | None = None
        if name == "oracle":
            self.weights = group_balanced_weights(dataset.train, dataset.group_columns)
        self._file_weights: np.ndarray | None = None  # the sampler's weights.csv under DDP, see _weights_from_file

    def refresh_weights(self, keep_latents: bool = True) -> dict[str, float]:
        """DB-VAE weights from the latents of the current model on the whole training split (and the early errors).

        Under DDP each rank encodes its share of the rows; `keep_latents=False` then spares
        gathering the latents when the weights do not need them (they are in `self.latents` only
        for the final weights, which latents.npy stores).
        """
        if self.ctx.distributed:
            return self._refresh_sharded(keep_latents)
        train = self.dataset.train
        self.latents = encode_all(self.model, train.images, self.config.eval_batch_size, self.device, self.amp)
        if not torch.isfinite(self.latents).all():
            raise NonFiniteLoss(f"the {self.name} model's latent means are not finite")
        labels = torch.tensor(train.labels)
        if self.weighting.strategy == AUTO:
            raise RuntimeError("the weighting strategy of an auto fit must be chosen before the DB-VAE trains")
        self.weights, score = training_weights(self.latents, labels, self.weighting, self.dataset.vae_on_all, self.early_probs)
        self.log_density = -score
        return weight_summary(self.weights)

    def _refresh_sharded(self, keep_latents: bool) -> dict[str, float]:
        train, ctx, config = self.dataset.train, self.ctx, self.config
        # Whole eval batches per rank: each rank encodes batches a single process would, so the
        # latents, and from them the weights, are the single process's bits.
        rows = ctx.shard(len(train), align=config.eval_batch_size)
        if rows.stop > rows.start:
            local = encode_all(self.model, train.images[rows], config.eval_batch_size, self.device, self.amp)
        else:
            local = torch.empty(0, config.latent_dim, device=self.device)
        if ctx.any(not bool(torch.isfinite(local).all())):
            raise NonFiniteLoss(f"the {self.name} model's latent means are not finite")
        if self.weighting.strategy == AUTO:
            raise RuntimeError("the weighting strategy of an auto fit must be chosen before the DB-VAE trains")
        self.weights, score, latents = sharded_training_weights(
            local, torch.tensor(train.labels), rows, self.weighting, self.dataset.vae_on_all, ctx, self.early_probs)
        if latents is None and keep_latents:
            latents = ctx.all_gather_rows(local)
        self.latents = latents
        self.log_density = -score
        return weight_summary(self.weights)

    def _weights_from_file(self) -> np.ndarray:
        # Rank 0 reads weights.csv and sends the aligned weights to the others: no rank but 0 needs
        # to see the run folder (another machine's ranks may not).
        if self._file_weights is None:
            ids = self.dataset.train.sample_ids
            self._file_weights = self.ctx.on_main(lambda: SampleWeights.load(self.weights_file).align(ids))
        return self._file_weights

    def _steps_per_epoch(self) -> int:
        rows = -(-len(self.dataset.train) // self.ctx.world_size)  # a rank's share, padded (rank_share)
        return -(-rows // (self.config.batch_size // self.ctx.world_size))

    def _batches(self, epoch: int, row: dict):
        train, config, ctx = self.dataset.train, self.config, self.ctx
        # The batch size is global: each rank takes its part, so a step of all ranks sees batch_size rows.
        batch_size = config.batch_size // ctx.world_size
        if self.name == "sampler":
            if ctx.distributed:
                sampler = DistributedWeightedSampler(self._weights_from_file(), num_replicas=ctx.world_size, rank=ctx.rank,
                                                     seed=config.seed * 1000 + epoch)
            else:
                sampler = SampleWeights.load(self.weights_file).to_sampler(train.sample_ids, seed=config.seed * 1000 + epoch)
            return torch.utils.data.DataLoader(
                UInt8ImageDataset(train.images, train.labels), batch_size=batch_size, sampler=sampler,
                pin_memory=self.device.type == "cuda",
            )
        generator = epoch_generator(config.seed, epoch, stream=MODELS.index(self.name))
        if self.name == "uniform":
            indices = uniform_indices(len(train), generator)
        else:
            if self.name == "dbvae":
                row.update(self.refresh_weights(keep_latents=False))
            else:
                row.update(weight_summary(self.weights))
            indices = weighted_indices(self.weights, len(train), generator)
        indices = rank_share(indices, ctx.rank, ctx.world_size)
        return iterate_batches(train.images, train.labels, indices.numpy(), batch_size, self.device)

    def _train_epoch(self, batches, bar) -> dict[str, float]:
        try:
            terms = train_one_epoch(self.train_model, self.criterion, self.optimizer, batches, self.device, self.amp, bar)
        except Exception as exc:
            if self.config.compile and _is_compile_error(exc):
                detail = (str(exc).strip().splitlines() or [""])[0][:300]
                raise CompileFailed(
                    f"--compile: torch.compile could not compile the {self.name} model ({type(exc).__name__}: {detail}). "
                    "On a CPU it needs a working C++ compiler: install one (g++ or clang, e.g. `apt install g++`), "
                    "or run without --compile"
                ) from exc
            raise
        # Under DDP each rank averaged its own rows; equal row counts per rank make the mean of the
        # ranks' means the mean over the step's rows, and a NaN on one rank a NaN everywhere.
        return self.ctx.mean(terms)

    def run_epoch(self, epoch: int, bar) -> dict:
        """Draw this epoch's rows, train on them, and return the history row.

        NonFiniteLoss when the mean loss or the model's state is NaN or infinite afterwards, so a
        broken model is never checkpointed.
        """
        row: dict = {"model": self.name, "epoch": epoch}
        start = time.perf_counter()
        row["learning_rate"] = cosine_learning_rate(self.config.learning_rate, epoch, self.config.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = row["learning_rate"]
        batches = self._batches(epoch, row)
        terms = self._train_epoch(batches, bar)
        if not np.isfinite(terms["total"]):
            raise NonFiniteLoss(f"the {self.name} loss became {terms['total']} in epoch {epoch} of {self.config.epochs}")
        self.ctx.broadcast_buffers(self.model)
        if not _finite_state(self.model):
            raise NonFiniteLoss(f"the {self.name} model's parameters became NaN or infinite in epoch {epoch} of {self.config.epochs}")
        row.update({f"train_{k}": v for k, v in terms.items()})
        _, valid = _evaluate(self.model, self.dataset.valid, self.dataset, self.config, self.device, self.amp, self.ctx)
        row.update(valid_accuracy=valid["accuracy"], valid_worst_group_accuracy=valid["worst_group_accuracy"])
        row["seconds"] = time.perf_counter() - start
        return row

    def train(self, progress: bool, first_epoch: int = 1, after_epoch: Callable[[str, int, dict], None] | None = None) -> list[dict]:
        """Epochs first_epoch..config.epochs with one progress bar; returns their history rows.

        `after_epoch(name, epoch, row)` runs after every epoch (the fit writes its checkpoint there).
        """
        epochs = range(first_epoch, self.config.epochs + 1)
        if not epochs:
            return []
        steps = len(epochs) * self._steps_per_epoch()
        rows = []
        with tqdm(total=steps, desc=f"{self.label:>7}", unit="batch", disable=not progress) as bar:
            for epoch in epochs:
                rows.append(self.run_epoch(epoch, bar))
                if after_epoch is not None:
                    after_epoch(self.name, epoch, rows[-1])
                bar.set_postfix(epoch=epoch, valid_acc=f"{rows[-1]['valid_accuracy']:.3f}",
                                worst=f"{rows[-1]['valid_worst_group_accuracy']:.3f}")
        return rows


def _plain(value):
    """numpy and 0-d torch scalars -> Python numbers, so a checkpoint loads with weights_only=True."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _epoch_span(done: int) -> str:
    return "epoch 1" if done == 1 else f"epochs 1-{done}"


def describe_progress(epochs_done: dict[str, int], epochs: int) -> str:
    """'uniform epochs 1-3, dbvae epoch 1 (of 3 each)' from a checkpoint's epochs_done."""
    parts = [f"{name} {_epoch_span(done)}" for name, done in epochs_done.items() if done > 0]
    return ", ".join(parts) + f" (of {epochs} each)" if parts else "no finished epoch"


def checkpoint_state(
    config: FitConfig,
    trainers: dict[str, _Trainer],
    epochs_done: dict[str, int],
    history: list[dict],
    fingerprint: str,
    seconds: float,
    complete: bool,
    early_probs: np.ndarray | None = None,
    selection: dict | None = None,
    early_errors: dict | None = None,
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
    saved = [name for name, t in trainers.items() if complete or epochs_done.get(name, 0) > 0]
    cuda = any(t.device.type == "cuda" for t in trainers.values())
    state = {
        "format_version": RUN_FORMAT_VERSION,
        "debias_version": __version__,
        "settings": json.dumps(config.to_dict(), default=str),
        "dataset": fingerprint,
        "epochs_done": {name: int(epochs_done.get(name, 0)) for name in trainers},
        "complete": bool(complete),
        "models": {name: trainers[name].model.state_dict() for name in saved},
        "optimizers": {name: trainers[name].optimizer.state_dict() for name in saved},
        "history": [{k: _plain(v) for k, v in row.items()} for row in history],
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
        "seconds": float(seconds),
    }
    if early_probs is not None:
        state["early_probs"] = torch.as_tensor(np.asarray(early_probs, dtype=np.float64))
    if early_errors is not None:
        state["early_errors"] = json.dumps(early_errors)
    if selection is not None:
        state["weighting_selection"] = json.dumps(selection)
    return state


def load_checkpoint(path: str | Path) -> dict:
    """checkpoint.pt of a run, read with weights_only=True and checked; UserError when damaged or incompatible."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise UserError(
            f"cannot read {path} with torch.load(weights_only=True) ({type(exc).__name__}); it is damaged or not a "
            "checkpoint of this debias. Start a new fit with --out NEW_FOLDER"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a debias checkpoint; start a new fit with --out NEW_FOLDER")
    check_format_version(state.get("format_version"), path, state.get("debias_version"))
    missing = [k for k in ("settings", "dataset", "epochs_done", "models", "optimizers", "history", "rng") if k not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; it cannot be resumed. Start a new fit with --out NEW_FOLDER")
    return state


def train_candidate(strategy: str, dataset: Dataset, config: FitConfig, device: torch.device,
                    early_probs: np.ndarray | None, progress: bool, ctx: DistContext = SINGLE) -> tuple[np.ndarray, dict]:
    """One short run of `--weighting auto`: a fresh DB-VAE trained `config.auto_epochs` epochs with
    `strategy`'s weights, as the fit's DB-VAE would be. Returns its P(label = 1) on the validation
    split and the weight_summary of the last weights it drew by."""
    short = replace(config, epochs=config.auto_epochs, weighting=replace(config.weighting, strategy=strategy))
    trainer = _Trainer("dbvae", dataset, short, device, label=strategy, ctx=ctx)
    trainer.early_probs = early_probs
    trainer.train(progress)
    probs = sharded_predict(trainer.model, dataset.valid.images, config, device, trainer.amp, ctx)
    return probs, weight_summary(trainer.weights)


def select_strategy(dataset: Dataset, config: FitConfig, device: torch.device, early_probs: np.ndarray | None,
                    progress: bool, ctx: DistContext = SINGLE) -> dict:
    """Run every candidate strategy briefly and choose by validation figures (debias.selection).

    Returns the record written to config.json as "weighting_selection": criterion, val_groups,
    epochs, chosen, and per candidate its validation figures, ESS, max/min weight ratio and seconds.
    The global torch RNG is restored afterwards, so the fit's DB-VAE trains exactly as it would
    with `--weighting CHOSEN`. Under DDP every rank gets rank 0's record, so all train the same choice.
    """
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    valid = dataset.valid
    criterion = WORST_GROUP if config.val_groups else WORST_CLASS
    candidates = {}
    for strategy in config.candidates:
        start = time.perf_counter()
        probs, stats = train_candidate(strategy, dataset, config, device, early_probs, progress, ctx)
        figures = validation_figures(valid.labels, probs, valid.attributes, config.val_groups)
        figures.update(ess=stats["ess"], max_min_ratio=stats["max_min_ratio"], seconds=time.perf_counter() - start)
        candidates[strategy] = figures
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    return ctx.broadcast_object({
        "criterion": criterion,
        "val_groups": list(config.val_groups),
        "epochs": config.auto_epochs,
        "accuracy_budget": config.auto_accuracy_budget,
        "chosen": choose(candidates, criterion, config.auto_accuracy_budget / 100),
        "candidates": candidates,
    })


class _Fit:
    """One fit into a run folder, new or resumed: trains what is left, checkpointing every epoch.

    Under DDP every rank runs it; only rank 0 (ctx.is_main) writes the run folder and shows progress.
    """

    def __init__(self, run_dir: Path, config: FitConfig, device: torch.device, progress: bool,
                 checkpoint: dict | None = None, created: str | None = None, resumed: bool = False,
                 ctx: DistContext = SINGLE):
        self.ctx = ctx
        progress = progress and ctx.is_main
        self.run_dir, self.config, self.device, self.progress = run_dir, config, device, progress
        self.checkpoint = checkpoint
        self.created = created or _dt.datetime.now().isoformat(timespec="seconds")
        self.history: list[dict] = []
        self.done: dict[str, int] = {}
        self.saved_done: dict[str, int] = dict(checkpoint["epochs_done"]) if checkpoint else {}
        self.seconds_before = float(checkpoint.get("seconds", 0.0)) if checkpoint else 0.0
        self.started = time.perf_counter()
        self.trainers: dict[str, _Trainer] = {}
        self.fingerprint = ""
        self.dataset: Dataset | None = None
        self.early_probs: np.ndarray | None = None
        self.early_errors: dict | None = None  # which epoch's errors early_probs holds, and their rates
        self.selection: dict | None = None
        if checkpoint is not None:
            if "early_probs" in checkpoint:
                self.early_probs = checkpoint["early_probs"].double().numpy()
            if "early_errors" in checkpoint:
                self.early_errors = json.loads(checkpoint["early_errors"])
            if "weighting_selection" in checkpoint:
                self.selection = json.loads(checkpoint["weighting_selection"])
        # Whether the run folder describes this fit yet (config.json written by it, or a resumed run).
        self.resumable = resumed

    def run(self) -> dict:
        """Train what is left and write every file of the run folder; returns the config.json summary."""
        try:
            return self._run()
        except KeyboardInterrupt:
            raise FitInterrupted(self.run_dir, self._interrupted_message()) from None
        except NonFiniteLoss as exc:
            c = self.config
            # Every rank meets it at the same step (losses are averaged over the ranks, parameters are equal).
            raise self.ctx.shared_error(UserError(
                f"{exc}; training stopped. {self._kept()} Hint: lower --lr (now {c.learning_rate:g}) or --beta "
                f"(now {c.beta:g}), or cap the weights with --cap, and start a new fit (--out NEW_FOLDER)."
            )) from None
        except CompileFailed as exc:
            raise self.ctx.shared_error(exc)
        except OSError as exc:
            if exc.filename is None or self.run_dir.resolve() not in Path(exc.filename).resolve().parents:
                raise
            raise UserError(
                f"cannot write {exc.filename}: {exc.strerror or exc}. {self._kept()} Free some space or fix the "
                f"folder's permissions, then continue with `debias fit --resume {self.run_dir}`."
            ) from None

    def _kept(self) -> str:
        if not any(self.saved_done.values()):
            return "No epoch had finished, so no checkpoint was written."
        return f"{self.run_dir / CHECKPOINT} keeps the last good state: {describe_progress(self.saved_done, self.config.epochs)}."

    def _interrupted_message(self) -> str:
        if not self.resumable:
            return "Training had not started, so nothing was saved; start the fit again."
        epochs = self.config.epochs
        if self.saved_done and all(done >= epochs for done in self.saved_done.values()) and self.saved_done.keys() >= self.trainers.keys():
            kept = f"Every epoch is in {self.run_dir / CHECKPOINT}; resuming only writes the remaining files."
        elif any(self.saved_done.values()):
            kept = f"{self.run_dir / CHECKPOINT} keeps {describe_progress(self.saved_done, epochs)}."
        else:
            kept = "No epoch had finished yet, so resuming starts the training again with the same settings."
        return f"{kept} Continue with: debias fit --resume {self.run_dir}"

    def _config_record(self, dataset: Dataset | None = None, status: str = "running") -> dict:
        record: dict = {
            "format_version": RUN_FORMAT_VERSION,
            "debias_version": __version__,
            "status": status,
            "created": self.created,
            "settings": self.config.to_dict(),
            "device": str(self.device),
            "torch_version": torch.__version__,
            "platform": platform.platform(),
        }
        if dataset is not None:
            record["dataset"] = {
                "name": dataset.name,
                "target": dataset.target,
                "group_columns": dataset.group_columns,
                "vae_on_all": dataset.vae_on_all,
                "sizes": {s: len(dataset.split(s)) for s in ("train", "valid", "test")},
                "info": dataset.info,
            }
        if self.early_errors is not None:
            record["early_errors"] = self.early_errors
        if self.selection is not None:
            record["weighting_selection"] = self.selection
        if self.ctx.distributed:
            record["processes"] = self.ctx.world_size  # torchrun's WORLD_SIZE; `device` is rank 0's
        return record

    def resolved_weighting(self) -> WeightingSettings:
        """The DB-VAE's weighting settings: the configured ones, with auto replaced by its choice."""
        weighting = self.config.weighting
        if weighting.strategy == AUTO:
            return replace(weighting, strategy=self.selection["chosen"])
        return weighting

    def _seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def _load_dataset(self) -> Dataset:
        config = self.config
        options = dict(config.data_options)
        if not self.ctx.is_main:
            options["progress"] = False
        dataset = load_dataset(config.data, image_size=config.image_size, **options)
        _check_dataset(dataset)
        if config.vae_on is not None:
            dataset.vae_on_all = config.vae_on == "all"
        if dataset.train.image_size != config.image_size:
            raise UserError(f"dataset images are {dataset.train.image_size}px but --image-size is {config.image_size}")
        missing = [name for name in config.val_groups if name not in dataset.valid.attributes.columns]
        if missing:
            known = ", ".join(map(str, dataset.valid.attributes.columns)) or "none"
            raise UserError(
                f"--val-groups: the validation split of {dataset.name} has no attribute {', '.join(missing)}; "
                f"its attributes are: {known}"
            )
        self.fingerprint = dataset_fingerprint(dataset)
        if self.checkpoint is not None and self.checkpoint["dataset"] != self.fingerprint:
            raise UserError(
                f"the data of {dataset.name} differ from those {self.run_dir} was trained on (other images, labels, "
                "splits, preprocessing or --limit); a fit can only be resumed on the same data. Restore the data, or "
                "start a new fit with --out NEW_FOLDER"
            )
        return dataset

    def _restore(self, state: dict) -> None:
        try:
            for name, model_state in state["models"].items():
                self.trainers[name].model.load_state_dict(model_state)
            for name, optimizer_state in state["optimizers"].items():
                self.trainers[name].optimizer.load_state_dict(optimizer_state)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(
                f"{self.run_dir / CHECKPOINT} does not match the models of this fit ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); start a new fit with --out NEW_FOLDER"
            ) from None
        self.done = {name: int(state["epochs_done"].get(name, 0)) for name in self.trainers}
        self.history = [dict(row) for row in state["history"]]
        torch.set_rng_state(state["rng"]["torch"])
        cuda_states = state["rng"].get("cuda") or []
        if cuda_states and self.device.type == "cuda" and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

    def _save_checkpoint(self, complete: bool = False) -> None:
        if self.ctx.is_main:
            state = checkpoint_state(self.config, self.trainers, self.done, self.history, self.fingerprint, self._seconds(),
                                     complete, self.early_probs, self.selection, self.early_errors)
            io.write_torch(self.run_dir / CHECKPOINT, state)
        self.saved_done = dict(self.done)

    def _after_epoch(self, name: str, epoch: int, row: dict) -> None:
        if (name == "uniform" and self.config.uses_errors and self.early_probs is None
                and epoch >= self.config.weighting.errors_epoch):
            self._take_early_errors(epoch)
        self.history.append(row)
        self.done[name] = epoch
        self._save_checkpoint()

    def _take_early_errors(self, epoch: int) -> None:
        """Keep the uniform baseline's training predictions after this epoch as JTT's early classifier.

        From `errors_epoch` on, the first epoch whose classifier errs less than always predicting the
        majority class (see early_error_rates); the last epoch's if none does, flagged in config.json.
        """
        trainer = self.trainers["uniform"]
        train = self.dataset.train
        probs = sharded_predict(trainer.model, train.images, self.config, self.device, trainer.amp, self.ctx)
        rates = early_error_rates(probs, train.labels)
        if rates["informative"] or epoch == self.config.epochs:
            self.early_probs = probs
            self.early_errors = {"epoch": epoch, **rates}

    def _train(self, name: str) -> None:
        if name in self.trainers:
            self.trainers[name].train(self.progress, self.done.get(name, 0) + 1, self._after_epoch)

    def _run(self) -> dict:
        config, run_dir, device, ctx = self.config, self.run_dir, self.device, self.ctx
        # Each machine's first rank loads (and caches) the data before the others read the cache.
        dataset = ctx.local_main_first(self._load_dataset)
        self.dataset = dataset
        if ctx.is_main:
            if self.checkpoint is None:
                # A new fit (--overwrite) first removes the files of the run it replaces: a stale
                # checkpoint.pt beside the new config.json would make --resume continue the old run.
                for name in (*RUN_FILES, EARLY_PROBS, *REPORT_FILES):
                    (run_dir / name).unlink(missing_ok=True)
            io.write_json(run_dir / CONFIG, self._config_record(dataset, status="running"))
        self.resumable = True

        # The DB-VAE is always trained: its latents make weights.csv. Strategies that use errors
        # read them from the uniform baseline, so it is trained for them even when not asked for.
        names = [m for m in MODELS if m == "dbvae" or (m == "uniform" and config.uses_errors)
                 or (m in config.models and (m != "oracle" or dataset.group_columns))]
        self.trainers = {name: _Trainer(name, dataset, config, device, ctx=ctx) for name in names}
        self.done = {name: 0 for name in names}
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self._train("uniform")
        if config.uses_errors and self.early_probs is None:
            raise UserError(
                f"{self.run_dir / CHECKPOINT} lacks the early classifier's predictions that the weighting strategy needs; "
                "start a new fit with --out NEW_FOLDER"
            )
        if config.weighting.strategy == AUTO and self.selection is None:
            self.selection = select_strategy(dataset, config, device, self.early_probs, self.progress, ctx)
            self._save_checkpoint()
            if ctx.is_main:
                io.write_json(run_dir / CONFIG, self._config_record(dataset, status="running"))
        dbvae = self.trainers["dbvae"]
        dbvae.weighting = self.resolved_weighting()
        dbvae.early_probs = self.early_probs
        self._train("dbvae")

        # Recomputed even on a resumed fit: it is a deterministic function of the final DB-VAE.
        final_stats = dbvae.refresh_weights()  # the weights shipped are those of the final model
        train = dataset.train
        if ctx.is_main:
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
            if self.early_probs is not None:
                io.write_npy(run_dir / EARLY_PROBS, np.asarray(self.early_probs, dtype=np.float64))
        for name in ("sampler", "oracle"):
            if name in self.trainers:
                self.trainers[name].weights_file = run_dir / "weights.csv"
                self._train(name)

        results: dict = {}
        for split_name in ("valid", "test"):
            split = dataset.split(split_name)
            probs = {}
            for name, trainer in self.trainers.items():
                probs[name], metrics = _evaluate(trainer.model, split, dataset, config, device, trainer.amp, ctx)
                results.setdefault(split_name, {})[name] = metrics
            if ctx.is_main:
                io.write_csv(run_dir / f"predictions_{split_name}.csv", _predictions_frame(split, probs))
        if ctx.is_main:
            io.write_csv(run_dir / "history.csv", pd.DataFrame(self.history))
        self._save_checkpoint(complete=True)
        summary = self._config_record(dataset, status="complete")
        summary.update(weighting_strategy=dbvae.weighting.strategy, final_weights=final_stats, results=results, seconds=self._seconds())
        if ctx.is_main:
            io.write_json(run_dir / CONFIG, summary)  # last: a config.json with results means the run is complete
        summary["run_dir"] = str(run_dir)
        return summary


def run_fit(config: FitConfig, out: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Train the uniform baseline, the DB-VAE and the other models; write the run directory; return the results.

        result = run_fit(FitConfig(epochs=2), out="runs/x")
        result["results"]["test"]["dbvae"]["worst_group_accuracy"]

    Raises UserError for bad settings or data, FitInterrupted (a KeyboardInterrupt) on Ctrl-C; after
    either, the run folder keeps the checkpoint of the last finished epoch for `resume_fit`.

    Under torchrun every process calls it with the same arguments and trains with DDP
    (debias.distributed.session); rank 0 creates and writes the run folder, and every rank returns
    the same results.
    """
    with session() as ctx:
        def checked_device() -> torch.device:
            check_config(config, ctx.world_size)
            return resolve_device(config.device, ctx)

        device = ctx.check(checked_device)
        target = Path(out) if out is not None else None
        existed = target is not None and target.exists()
        run_dir = ctx.on_main(lambda: prepare_run_dir(out, config.data, overwrite))
        try:
            return _Fit(run_dir, config, device, progress, ctx=ctx).run()
        except BaseException:
            # A fit that failed before writing anything leaves no empty run folder behind.
            if ctx.is_main and not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            raise


def _model_names(models: Iterable[str]) -> tuple[str, ...]:
    names = set(models) | {"dbvae"}
    return tuple(sorted(names, key=lambda m: (MODELS.index(m) if m in MODELS else len(MODELS), m)))


def _resolved_path(value) -> str | None:
    return None if value in (None, "") else str(Path(value).expanduser().resolve())


# Parameter of `debias fit` -> (its option, its value in a FitConfig). These decide what is trained,
# so `--resume` refuses an explicitly given value that differs from the run's. --device, --cache-dir,
# --workers, --quiet and --report only change how the fit runs and may be given freely.
RESUME_CHECKED: dict[str, tuple[str, Callable[[FitConfig], object]]] = {
    "data": ("--data", lambda c: c.data),
    "root": ("--root", lambda c: _resolved_path(c.data_options.get("root"))),
    "target": ("--target", lambda c: c.data_options.get("target")),
    "groups": ("--groups", lambda c: parse_names(c.data_options.get("groups")) or None),
    "limit": ("--limit", lambda c: c.data_options.get("limit")),
    "data_option": ("--data-option", lambda c: _other_data_options(c.data_options)),
    "vae_on": ("--vae-on", lambda c: c.vae_on),
    "epochs": ("--epochs", lambda c: c.epochs),
    "batch_size": ("--batch-size", lambda c: c.batch_size),
    "learning_rate": ("--lr", lambda c: c.learning_rate),
    "latent_dim": ("--latent-dim", lambda c: c.latent_dim),
    "beta": ("--beta", lambda c: c.beta),
    "alpha": ("--alpha", lambda c: c.weighting.alpha),
    "bins": ("--bins", lambda c: c.weighting.bins),
    "combine": ("--combine", lambda c: c.weighting.combine),
    "cap": ("--cap", lambda c: c.weighting.cap),
    "weighting": ("--weighting", lambda c: c.weighting.strategy),
    "errors_upweight": ("--errors-upweight", lambda c: c.weighting.errors_upweight),
    "errors_epoch": ("--errors-epoch", lambda c: c.weighting.errors_epoch),
    "joint_method": ("--joint-method", lambda c: c.weighting.joint_method),
    "joint_dims": ("--joint-dims", lambda c: c.weighting.joint_dims),
    "joint_components": ("--joint-components", lambda c: c.weighting.joint_components),
    "knn_k": ("--knn-k", lambda c: c.weighting.knn_k),
    "joint_alpha": ("--joint-alpha", lambda c: c.weighting.joint_alpha),
    "auto_strategies": ("--auto-strategies", lambda c: tuple(c.auto_strategies)),
    "auto_epochs": ("--auto-epochs", lambda c: c.auto_epochs),
    "auto_accuracy_budget": ("--auto-accuracy-budget", lambda c: c.auto_accuracy_budget),
    "val_groups": ("--val-groups", lambda c: tuple(c.val_groups)),
    "image_size": ("--image-size", lambda c: c.image_size),
    "seed": ("--seed", lambda c: c.seed),
    "models": ("--models", lambda c: _model_names(c.models)),
}


# Data options with a flag of their own (or that only change how data is read).
_NAMED_DATA_OPTIONS = ("root", "target", "groups", "limit", *RUNTIME_DATA_OPTIONS)


def _other_data_options(options: dict) -> dict:
    """The options given by --data-option KEY=VALUE."""
    return {k: v for k, v in sorted(options.items()) if k not in _NAMED_DATA_OPTIONS}


def _shown(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_conflicts(saved: FitConfig, given: FitConfig, explicit: Iterable[str]) -> list[str]:
    """'--epochs 5 (the run has 3)' for every explicitly given parameter whose value differs from the run's."""
    conflicts = []
    for name, (option, read) in RESUME_CHECKED.items():
        if name in explicit:
            if read(given) != read(saved):
                conflicts.append(f"{option} {_shown(read(given))} (the run has {_shown(read(saved))})")
    return conflicts


def _resumed_config(saved: FitConfig, given: FitConfig | None, explicit: set[str]) -> FitConfig:
    if given is None:
        return saved
    options = {k: v for k, v in saved.data_options.items() if k != "progress"}
    for key in RUNTIME_DATA_OPTIONS:
        if key in explicit and key in given.data_options:
            options[key] = given.data_options[key]
    if "progress" in given.data_options:
        options["progress"] = given.data_options["progress"]
    runtime = {field: getattr(given if param in explicit else saved, field) for field, param in RUNTIME_SETTINGS.items()}
    return replace(saved, data_options=options, **runtime)


def resume_fit(run_dir: str | Path, given: FitConfig | None = None, explicit: Iterable[str] = (), progress: bool = True) -> dict:
    """Continue the fit in `run_dir` from its last checkpoint with its saved settings; return the results.

        result = resume_fit("runs/x")                               # what `debias fit --resume runs/x` does
        resume_fit("runs/x", FitConfig(epochs=5), {"epochs"})       # UserError unless the run has 5 epochs

    `given` holds the settings of the command line and `explicit` the names of the parameters the user
    actually gave (click's parameter names: "epochs", "learning_rate", "alpha", ...): a given
    parameter of RESUME_CHECKED that differs from the run's is a UserError naming both values;
    device, compile, eval_batch_size, cache_dir, workers and progress are taken from `given`. The
    fit continues after the last model and epoch in checkpoint.pt (from the start, with the saved
    settings, when it was stopped before its first checkpoint). A run that already finished is not
    retrained: its config.json summary comes back with "already_complete": True. UserError when the
    folder is missing, not a run folder, from an incompatible debias, damaged, or its data changed.

    Under torchrun every process calls it and reads the run folder itself (so on several machines
    the folder must be on a filesystem they share); rank 0 writes it.
    """
    run_dir = Path(run_dir)
    explicit = set(explicit)
    with session() as ctx:
        summary, config, device, checkpoint, created = ctx.check(lambda: _read_resumable(run_dir, given, explicit, ctx))
        if summary is not None:
            return summary

        def prepare() -> None:
            _check_writable(run_dir, "make it writable to resume the fit")
            io.remove_stale_temporaries(run_dir)  # left by a writer that was killed mid-write

        ctx.on_main(prepare)
        return _Fit(run_dir, config, device, progress, checkpoint, created=created, resumed=True, ctx=ctx).run()


def _read_resumable(run_dir: Path, given: FitConfig | None, explicit: set[str], ctx: DistContext):
    """(summary of a finished run, None, None, None, None), or (None, config, device, checkpoint, created) to resume."""
    if not run_dir.exists():
        raise UserError(f"run folder {run_dir} does not exist, so there is nothing to resume; start a fit with `debias fit --out {run_dir}`")
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir} is a file; pass the run folder of an interrupted `debias fit`")
    if given is not None:
        check_config(given, ctx.world_size)
    has_checkpoint = (run_dir / CHECKPOINT).is_file()
    if not has_checkpoint and not (run_dir / CONFIG).is_file():
        raise UserError(
            f"{run_dir} holds neither {CHECKPOINT} nor {CONFIG}, so it is not the run folder of a `debias fit`; "
            "check the path, or start a new fit with --out"
        )
    config_json = read_run_config(run_dir) if (run_dir / CONFIG).is_file() else None
    checkpoint = load_checkpoint(run_dir / CHECKPOINT) if has_checkpoint else None
    settings = json.loads(checkpoint["settings"]) if checkpoint is not None else config_json.get("settings")
    try:
        saved = FitConfig.from_dict(settings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserError(
            f"the settings saved in {run_dir} cannot be read by this debias ({exc}); it comes from an incompatible "
            "version. Start a new fit with --out NEW_FOLDER"
        ) from None
    conflicts = settings_conflicts(saved, given, explicit) if given is not None else []
    if conflicts:
        raise UserError(
            f"--resume {run_dir} continues the fit with the settings it was started with, but "
            + "; ".join(conflicts)
            + ". Drop those options to resume, or start a new fit with --out NEW_FOLDER to change them."
        )
    if config_json is not None and "results" in config_json:
        summary = dict(config_json, run_dir=str(run_dir), already_complete=True)
        return summary, None, None, None, None
    config = _resumed_config(saved, given, explicit)
    check_config(config, ctx.world_size)
    device = resolve_device(config.device, ctx)
    created = config_json.get("created") if config_json else None
    return None, config, device, checkpoint, created
