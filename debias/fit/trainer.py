"""One model's epoch loop: its network and optimizer, the learning-rate schedule, NaN checks, DDP and compile."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from debias.augment import augmented
from debias.fit.draws import Draw
from debias.fit.errors import CompileFailed, NonFiniteLoss, is_compile_error
from debias.fit.evaluation import evaluate
from debias.fit.health import EPOCH_ROWS, latent_health, mean_image, vae_rows
from debias.models import DBVAE, Classifier, DBVAELoss, classifier_loss
from debias.sampling import epoch_generator
from debias.train import train_one_epoch

EPOCH_VALIDATION_ROWS = 2048
AUGMENT_STREAM = 50


def cosine_learning_rate(base: float, epoch: int, epochs: int) -> float:
    """Learning rate of `epoch` (1-based): cosine annealing from `base` over the fit, one step per epoch.

    Without annealing the classifiers end wherever the last minibatches left them: on synthfaces
    the worst-group accuracy of the same model moved 20-40 points from one epoch to the next.
    A function of the epoch alone, so a resumed fit gets the same rates with no scheduler state.
    """
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


def _finite_state(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


class Trainer:
    """Trains one model of a fit epoch by epoch, drawing its rows as `draw` says.

    The network is the DB-VAE for a draw that trains it, else the plain classifier; both are built
    right after seeding the global RNG with the fit's seed, so every model starts from the same
    initialisation of the shared trunk. `label` is shown on the progress bar.
    """

    def __init__(self, draw: Draw, label: str | None = None):
        self.draw = draw
        self.name, self.dataset, self.config, self.device, self.ctx = (
            draw.name,
            draw.dataset,
            draw.config,
            draw.device,
            draw.ctx,
        )
        config, device = self.config, self.device
        self.label = label or self.name
        self.amp = config.amp and device.type == "cuda"
        torch.manual_seed(config.seed)
        if draw.trains_dbvae:
            self.model = DBVAE(config.latent_dim, config.image_size, config.width)
            self.criterion = DBVAELoss(config.beta, self.dataset.vae_on_all)
            draw.model = self.model
        else:
            self.model = Classifier(config.image_size, config.width)
            self.criterion = classifier_loss
        self.model.to(device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        # What train_one_epoch runs: the model, under DDP with torchrun and compiled with --compile.
        # Encoding, prediction and checkpoints use the plain model, so the DB-VAE's encode/classify
        # are reachable and state_dict keys carry no "module." or "_orig_mod." prefix.
        self.train_model: torch.nn.Module = self.model
        if self.ctx.distributed:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self._mean_image: torch.Tensor | None = None
        self._epoch_validation = None

    def epoch_validation(self):
        """The validation rows measured after every epoch: the first EPOCH_VALIDATION_ROWS (the whole split when smaller).

        The per-epoch figures only show how training goes (history.csv, the progress bar); the
        fit's results and `--weighting auto` use the whole split. 2,048 rows keep the per-epoch
        cost under a second of a 2-core CPU while resolving a group's accuracy to a few points.
        """
        valid = self.dataset.valid
        if len(valid) <= EPOCH_VALIDATION_ROWS:
            return valid
        if self._epoch_validation is None:
            self._epoch_validation = valid.subset(np.arange(EPOCH_VALIDATION_ROWS))
        return self._epoch_validation

    def mean_image(self) -> torch.Tensor:
        """The mean of the VAE's training images (the reconstruction baseline of latent health), computed once."""
        if self._mean_image is None:
            train = self.dataset.train
            self._mean_image = mean_image(train.images, vae_rows(train, self.dataset.vae_on_all))
        return self._mean_image

    def _train_epoch(self, batches, bar) -> dict[str, float]:
        try:
            terms = train_one_epoch(
                self.train_model, self.criterion, self.optimizer, batches, self.device, self.amp, bar
            )
        except Exception as exc:
            if self.config.compile and is_compile_error(exc):
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
        config = self.config
        row: dict = {"model": self.name, "epoch": epoch}
        start = time.perf_counter()
        row["learning_rate"] = cosine_learning_rate(config.learning_rate, epoch, self.draw.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = row["learning_rate"]
        batches = self.draw.batches(epoch, row)
        if config.augment:
            # A stream per model, apart from the draws' (0 .. len(MODELS) - 1). Not per rank: the ranks take
            # different rows, and epoch_generator's streams alias the next epoch's from 101 on.
            stream = AUGMENT_STREAM + self.draw.stream
            batches = augmented(batches, epoch_generator(config.seed, epoch, stream=stream))
        terms = self._train_epoch(batches, bar)
        if not np.isfinite(terms["total"]):
            raise NonFiniteLoss(f"the {self.name} loss became {terms['total']} in epoch {epoch} of {self.draw.epochs}")
        self.ctx.broadcast_buffers(self.model)
        if not _finite_state(self.model):
            raise NonFiniteLoss(
                f"the {self.name} model's parameters became NaN or infinite in epoch {epoch} of {self.draw.epochs}"
            )
        row.update({f"train_{k}": v for k, v in terms.items()})
        _, valid = evaluate(
            self.model, self.epoch_validation(), self.dataset, config.eval_batch_size, self.device, self.amp, self.ctx
        )
        row.update(valid_accuracy=valid["accuracy"], valid_worst_group_accuracy=valid["worst_group_accuracy"])
        if self.draw.trains_dbvae:
            health = latent_health(
                self.model,
                self.dataset.valid,
                self.mean_image(),
                self.dataset.vae_on_all,
                [],
                config.eval_batch_size,
                self.device,
                self.amp,
                limit=EPOCH_ROWS,
                probe=False,
            )
            row.update({key: health[key] for key in ("kl_nats", "active_dims", "reconstruction_ratio")})
        row["seconds"] = time.perf_counter() - start
        return row

    def train(
        self,
        progress: bool,
        first_epoch: int = 1,
        after_epoch: Callable[[str, int, dict], None] | None = None,
        last_epoch: int | None = None,
    ) -> list[dict]:
        """Epochs first_epoch..last_epoch (default draw.epochs) with one progress bar; returns their history rows.

        `after_epoch(name, epoch, row)` runs after every epoch (the fit writes its checkpoint there).
        """
        epochs = range(first_epoch, (self.draw.epochs if last_epoch is None else last_epoch) + 1)
        if not epochs:
            return []
        rows = []
        with tqdm(
            total=len(epochs) * self.draw.steps_per_epoch, desc=f"{self.label:>7}", unit="batch", disable=not progress
        ) as bar:
            for epoch in epochs:
                rows.append(self.run_epoch(epoch, bar))
                if after_epoch is not None:
                    after_epoch(self.name, epoch, rows[-1])
                bar.set_postfix(
                    epoch=epoch,
                    valid_acc=f"{rows[-1]['valid_accuracy']:.3f}",
                    worst=f"{rows[-1]['valid_worst_group_accuracy']:.3f}",
                )
        return rows
