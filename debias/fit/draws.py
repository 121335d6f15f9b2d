"""How each model of a fit draws its training rows every epoch: one small class per model.

    uniform  every training row once per epoch, in random order
    dbvae    the DB-VAE, rows drawn by the strategy's weights, refreshed at every epoch start from its
             own latents (for the strategies that read them) and the early errors
    sampler  a plain classifier trained by an ordinary DataLoader loop with torch's
             WeightedRandomSampler over the exported weights.csv (proves the file helps a
             pipeline that is not ours)
    oracle   a plain classifier drawing rows so that every true group has equal mass (uses the
             group labels, which debias itself never does)

Every draw is seeded by (seed, epoch, model), so a resumed fit repeats an uninterrupted one. Under
DDP each rank takes its share of the one global draw (debias.sampling.rank_share) with a per-rank
batch of batch_size / world_size.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from debias.data import Dataset
from debias.distributed import DistContext
from debias.fit.config import MODELS, FitConfig
from debias.fit.errors import NonFiniteLoss
from debias.groups import column_groups
from debias.sampling import epoch_generator, rank_share, uniform_indices, weighted_indices
from debias.train import UInt8ImageDataset, encode_all, iterate_batches
from debias.weight_files import DistributedWeightedSampler, SampleWeights
from debias.weighting import (
    AUTO,
    STRATEGIES,
    WeightingSettings,
    needs_groups,
    normalize_log_weights,
    reads_latents,
    scored_rows,
    training_weights,
    weight_summary,
)
from debias.weighting.labels import balanced_group_log_weights
from debias.weighting.sharded import sharded_training_weights

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def steps_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Optimizer steps of one epoch over `rows` training rows: a rank's share, padded as rank_share pads it."""
    rank_rows = -(-rows // world_size)
    return -(-rank_rows // (batch_size // world_size))


def warmup_epochs(rows: int, config: FitConfig, world_size: int = 1) -> int:
    """The DB-VAE's epochs of uniform draws: config.vae_warmup_steps rounded up to whole epochs."""
    return -(-config.vae_warmup_steps // steps_per_epoch(rows, config.batch_size, world_size))


class Draw:
    """The rows one model trains on each epoch. Subclasses say how; `trains_dbvae` says which network."""

    trains_dbvae = False

    def __init__(self, name: str, dataset: Dataset, config: FitConfig, device: torch.device, ctx: DistContext):
        self.name, self.dataset, self.config, self.device, self.ctx = name, dataset, config, device, ctx
        # The per-model stream of epoch_generator, fixed by the model's place in MODELS.
        self.stream = MODELS.index(name)

    @property
    def batch_size(self) -> int:
        """A rank's part of the global batch: a step of all ranks together sees config.batch_size rows."""
        return self.config.batch_size // self.ctx.world_size

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of one epoch (a rank's share of the rows, padded as rank_share pads it)."""
        return steps_per_epoch(len(self.dataset.train), self.config.batch_size, self.ctx.world_size)

    @property
    def epochs(self) -> int:
        """Epochs this model trains: the DB-VAE's warm-up epochs, then config.epochs; the same for every model,
        so no model beats another by a larger budget."""
        return warmup_epochs(len(self.dataset.train), self.config, self.ctx.world_size) + self.config.epochs

    def indices(self, epoch: int, generator: torch.Generator, row: dict) -> torch.Tensor:
        """This epoch's rows of the training split (all ranks together); may add weight statistics to `row`."""
        raise NotImplementedError

    def batches(self, epoch: int, row: dict) -> Batches:
        """(uint8 images, labels) batches of this rank for `epoch`."""
        train = self.dataset.train
        indices = self.indices(epoch, epoch_generator(self.config.seed, epoch, stream=self.stream), row)
        indices = rank_share(indices, self.ctx.rank, self.ctx.world_size)
        return iterate_batches(train.images, train.labels, indices.numpy(), self.batch_size, self.device)


class UniformDraw(Draw):
    """Every training row once per epoch, in random order."""

    def indices(self, epoch: int, generator: torch.Generator, row: dict) -> torch.Tensor:
        """A permutation of the training rows."""
        return uniform_indices(len(self.dataset.train), generator)


def training_groups(dataset: Dataset) -> np.ndarray | None:
    """Each training row's true group (its group attributes, e.g. 'Male=1'), or None when the data has no group columns."""
    if not dataset.group_columns:
        return None
    return column_groups(dataset.train.attributes, dataset.group_columns).to_numpy(str)


def true_training_labels(dataset: Dataset) -> np.ndarray:
    """The training split's true target: the attribute column of the target where the data keeps one
    (CelebA's attributes; synthfaces keeps the true value there when `label_noise` flips labels), else the labels."""
    train = dataset.train
    column = train.attributes.get(dataset.target) if dataset.target else None
    if column is None or not column.isin([0, 1]).all():
        return train.labels
    return column.to_numpy(np.int64)


def group_balanced_weights(dataset: Dataset) -> torch.Tensor:
    """The oracle's weights: every true training cell (group attributes x true label) gets the same total weight, mean 1.

    The `balanced-groups` weighting strategy's weights (debias.weighting.labels) when the labels are
    right. Where some training labels are wrong (synthfaces' `label_noise`) the oracle still knows
    the truth: balancing by the given labels would give the handful of flipped faces of a rare
    subgroup (a cell of its own) as much mass as all the common faces.
    """
    return normalize_log_weights(balanced_group_log_weights(training_groups(dataset), true_training_labels(dataset)))


class GroupBalancedDraw(Draw):
    """Rows drawn with replacement so that every true group has equal mass (the oracle)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights = group_balanced_weights(self.dataset)

    def indices(self, epoch: int, generator: torch.Generator, row: dict) -> torch.Tensor:
        """As many rows as the split holds, drawn with replacement by the group-balanced weights."""
        row.update(weight_summary(self.weights))
        return weighted_indices(self.weights, len(self.dataset.train), generator)


class DensityDraw(Draw):
    """The DB-VAE's rows, drawn by weights refreshed each epoch from its latents (and the early errors).

    `weighting` is the strategy (an auto fit sets the chosen one before training) and
    `early_probs` the early classifier's P(label = 1) per training row, for the errors strategies.
    `model` is set by the trainer: the DB-VAE whose latents make the weights.
    """

    trains_dbvae = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model: torch.nn.Module | None = None
        self.amp = self.config.amp and self.device.type == "cuda"
        self.weighting: WeightingSettings = self.config.weighting
        self.early_probs: np.ndarray | None = None
        self.weights: torch.Tensor | None = None
        self.log_density: torch.Tensor | None = None
        self.latents: torch.Tensor | None = None

    @property
    def warmup_epochs(self) -> int:
        """Epochs of uniform draws before the weights are used: vae_warmup_steps rounded up to whole epochs.

        Weights from an encoder that has not learned yet are noise; a step count (not epochs) makes
        the warm-up as long on a 3,000-image dataset as on a 20,000-image one. Every model trains
        these epochs too (Draw.epochs): a DB-VAE given more epochs than the baseline would beat it by budget.
        """
        return warmup_epochs(len(self.dataset.train), self.config, self.ctx.world_size)

    def refresh(self, keep_latents: bool = True) -> dict[str, float]:
        """Weights of the current model on the training split; their weight_summary.

        The one place that encodes the training split for weights. Each rank encodes whole eval
        batches of its shard of the rows (one process: all rows), so the latents, and from them the
        weights, are the single process's bits. An epoch's refresh (`keep_latents=False`) encodes
        only what the weights read: the rows the strategy scores (the positives in face detection)
        for the strategies that read latents (their registry entry's reads_latents), nothing for the others (errors,
        classes, the group strategies). `keep_latents=True` (the final weights, whose latents
        latents.npy stores) encodes every row and keeps the latents in `self.latents`.
        """
        if self.weighting.strategy == AUTO:
            raise RuntimeError("the weighting strategy of an auto fit must be chosen before the DB-VAE trains")
        train, ctx, config = self.dataset.train, self.ctx, self.config
        labels = torch.tensor(train.labels)
        groups = training_groups(self.dataset) if needs_groups(self.weighting.strategy) else None
        if not keep_latents and not reads_latents(self.weighting.strategy):
            # Nothing to encode or gather: every rank computes the weights from the labels, early errors
            # and groups, and takes rank 0's copy, as sharded_training_weights does.
            no_latents = torch.zeros(len(train), 0, device=self.device)
            self.weights, score = training_weights(
                no_latents, labels, self.weighting, self.dataset.vae_on_all, self.early_probs, groups
            )
            ctx.broadcast(self.weights)
            ctx.broadcast(score)
            self.log_density = -score
            return weight_summary(self.weights)
        rows = ctx.shard(len(train), align=config.eval_batch_size)
        # Rows the weights do not read stay NaN (encode_all's `only`); no strategy looks at them.
        only = None if keep_latents else self._scored(labels).numpy()[rows]
        local = encode_all(self.model, train.images[rows], config.eval_batch_size, self.device, self.amp, only)
        encoded = local if only is None else local[torch.from_numpy(only).to(self.device)]
        if ctx.any(not bool(torch.isfinite(encoded).all())):
            raise NonFiniteLoss(f"the {self.name} model's latent means are not finite")
        self.weights, score, latents = sharded_training_weights(
            local, labels, rows, self.weighting, self.dataset.vae_on_all, ctx, self.early_probs, groups
        )
        if keep_latents:
            self.latents = ctx.all_gather_rows(local) if latents is None else latents
        self.log_density = -score
        return weight_summary(self.weights)

    def _scored(self, labels: torch.Tensor) -> torch.Tensor:
        """bool [N]: the training rows the strategy scores, whose latents its weights read."""
        every_row = self.dataset.vae_on_all or STRATEGIES[self.weighting.strategy].scores_every_row
        return scored_rows(labels, every_row)

    def indices(self, epoch: int, generator: torch.Generator, row: dict) -> torch.Tensor:
        """Uniform during the warm-up; then as many rows as the split holds, drawn by the weights of the model
        as it is at the epoch's start."""
        if epoch <= self.warmup_epochs:
            return uniform_indices(len(self.dataset.train), generator)
        row.update(self.refresh(keep_latents=False))
        return weighted_indices(self.weights, len(self.dataset.train), generator)


class FileDraw(Draw):
    """A plain DataLoader with torch's WeightedRandomSampler over a weights file, as a user's pipeline would."""

    def __init__(self, *args, weights_file: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights_file = weights_file
        self._aligned: np.ndarray | None = None

    def _weights_for_ddp(self) -> np.ndarray:
        # Rank 0 reads the file and sends the aligned weights to the others: no rank but 0 needs
        # to see the run folder (another machine's ranks may not).
        if self._aligned is None:
            ids = self.dataset.train.sample_ids
            self._aligned = self.ctx.on_main(lambda: SampleWeights.load(self.weights_file).align(ids))
        return self._aligned

    def batches(self, epoch: int, row: dict) -> Batches:
        """A DataLoader over the training split whose sampler draws by the file's weights."""
        train, ctx, seed = self.dataset.train, self.ctx, self.config.seed * 1000 + epoch
        if ctx.distributed:
            sampler = DistributedWeightedSampler(
                self._weights_for_ddp(), num_replicas=ctx.world_size, rank=ctx.rank, seed=seed
            )
        else:
            sampler = SampleWeights.load(self.weights_file).to_sampler(train.sample_ids, seed=seed)
        return torch.utils.data.DataLoader(
            UInt8ImageDataset(train.images, train.labels),
            batch_size=self.batch_size,
            sampler=sampler,
            pin_memory=self.device.type == "cuda",
        )


# Model name -> how it draws, for every model of debias.fit.config.MODELS.
DRAWS: dict[str, type[Draw]] = {
    "uniform": UniformDraw,
    "dbvae": DensityDraw,
    "sampler": FileDraw,
    "oracle": GroupBalancedDraw,
}
