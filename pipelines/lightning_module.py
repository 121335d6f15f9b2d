"""PyTorch Lightning, with a `LightningDataModule` whose training loader draws rows by a debias weights.csv.

    pip install -e ".[integrations]"          # lightning
    python pipelines/lightning_module.py --run runs/celeba --group Male
    python pipelines/lightning_module.py --run runs/celeba --devices 2 --strategy ddp   # DDP

What you copy into your own code is `WeightedDataModule.train_dataloader`: the sampler comes from
`SampleWeights.to_sampler(ids, rank=..., world_size=...)`, so under DDP every process draws the
same global weighted sample from a shared seed and keeps its own interleaved share (on one
device it is rank 0 of 1). Lightning calls the sampler's `set_epoch` at every epoch, so each
epoch is a new draw. `Trainer(use_distributed_sampler=False)` keeps Lightning from wrapping the
sampler in its own distributed one.

The demonstration trains a small MLP on a run's latent means (latents.npy, the rows of
weights.csv), holds out a stratified --test-size of them and prints test accuracy per
(label, --group) cell: a check of the plumbing more than an evaluation.
"""

from __future__ import annotations

import argparse
import sys

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import debias
from debias.errors import UserError
from debias.weight_files import SampleWeights


class WeightedDataModule(L.LightningDataModule):
    """Training rows drawn by `weights` (looked up by `train_ids`, which line up with `train_set`), test rows in order."""

    def __init__(
        self, train_set, train_ids, weights: SampleWeights, test_set=None, batch_size: int = 32, seed: int = 0
    ):
        super().__init__()
        self.train_set, self.train_ids, self.weights = train_set, list(train_ids), weights
        self.test_set, self.batch_size, self.seed = test_set, batch_size, seed

    def train_dataloader(self) -> DataLoader:
        """A loader whose sampler is this process's share of one weighted draw per epoch."""
        sampler = self.weights.to_sampler(
            self.train_ids,
            seed=self.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            allow_extra=True,  # the demonstration trains on part of the rows weights.csv covers
        )
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def test_dataloader(self) -> DataLoader:
        """The held-out rows, in order."""
        return DataLoader(self.test_set, batch_size=256)


class LitMLP(L.LightningModule):
    """Two layers trained with cross-entropy; keeps the training rows it saw (`seen`) and its test predictions."""

    def __init__(self, dims: int, hidden: int = 32, lr: float = 1e-3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dims, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.lr = lr
        self.seen: list[int] = []
        self.test_predictions: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        """Cross-entropy of one batch of (features, labels, row numbers)."""
        x, y, rows = batch
        self.seen.extend(rows.tolist())
        return nn.functional.cross_entropy(self.net(x), y)

    def test_step(self, batch, batch_idx):
        """Keep the predicted class of every test row."""
        x, _, _ = batch
        self.test_predictions.append(self.net(x).argmax(1).cpu())

    def configure_optimizers(self):
        """Adam at the module's learning rate."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def rows(X: np.ndarray, y: np.ndarray) -> TensorDataset:
    """(features, label, row number) per row."""
    return TensorDataset(
        torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long), torch.arange(len(y))
    )


def trainer(args) -> L.Trainer:
    """A quiet Lightning Trainer; use_distributed_sampler=False keeps the data module's per-rank sampler."""
    return L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train with the weights, print per-cell test accuracy; a UserError is exit code 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished debias run folder (latents.npy, weights.csv)")
    parser.add_argument("--weights", default=None, help="weights file (default: RUN/weights.csv)")
    parser.add_argument(
        "--group", default=None, help="group attribute of the run (a group_<attr> column of weights.csv)"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--strategy", default="auto")
    args = parser.parse_args(argv)
    try:
        result = debias.load_run(args.run)
        table = result.weights_frame
        X, y, ids = result.latents, table["label"].to_numpy(np.int64), table["sample_id"].to_numpy()
        groups = np.full(len(y), "all") if args.group is None else result_group(table, args.group)
        weights = SampleWeights.load(args.weights or result.run_dir / "weights.csv")
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    L.seed_everything(args.seed, verbose=False)
    train, test = train_test_split(np.arange(len(y)), test_size=args.test_size, random_state=args.seed, stratify=y)
    data = WeightedDataModule(
        rows(X[train], y[train]), ids[train], weights, rows(X[test], y[test]), args.batch_size, args.seed
    )
    model = LitMLP(X.shape[1], lr=args.lr)
    fit = trainer(args)
    fit.fit(model, datamodule=data)
    fit.test(model, datamodule=data, verbose=False)
    if fit.global_rank == 0:
        pred = torch.cat(model.test_predictions).numpy()
        print(
            f"weighted by {args.weights or result.run_dir / 'weights.csv'}: {len(train)} training rows, {len(test)} test rows"
        )
        for label, group in sorted(set(zip(y[test], groups[test]))):
            cell = (y[test] == label) & (groups[test] == group)
            print(f"    label={label} {args.group or 'group'}={group}: {(pred[cell] == label).mean():.3f}")
    return 0


def result_group(table, group: str) -> np.ndarray:
    """Each row's value of the run's group attribute `group` (its group_<attr> column)."""
    column = f"group_{group}"
    if column not in table.columns:
        known = [c[len("group_") :] for c in table.columns if c.startswith("group_")]
        raise UserError(f"--group {group!r}: the run has no such group attribute; it has: {', '.join(known) or 'none'}")
    return table[column].astype(str).to_numpy()


if __name__ == "__main__":
    sys.exit(main())
