"""The Hugging Face `Trainer`, drawing its training rows by a debias weights.csv.

    pip install -e ".[integrations]"          # transformers and accelerate
    python pipelines/hf_trainer.py --run runs/celeba
    python pipelines/hf_trainer.py --run runs/celeba --weights runs/celeba/weights-groups.csv --group Male

What you copy into your own code is `WeightedTrainer`: a `Trainer` whose training sampler draws
rows with replacement in proportion to their weights (the weights are looked up by sample id, so
your dataset's order does not matter). Under DDP (`torchrun ... hf_trainer.py`) every process
builds the same sampler from the same seed and accelerate hands each process its own batches of
that one sequence: together the processes see one weighted draw per epoch.

The demonstration trains a small MLP on a run's latent means (latents.npy, the rows of
weights.csv), holds out a stratified --test-size of them, and prints test accuracy per
(label, --group) cell, with and without the weights: a check of the plumbing more than an
evaluation (your own images or embeddings go where the latents are).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from transformers import Trainer, TrainingArguments

import debias
from debias.errors import UserError
from debias.weight_files import SampleWeights


class WeightedTrainer(Trainer):
    """A Trainer whose training batches are drawn by `sample_weights`; `sample_ids` line up with train_dataset's rows.

    `_get_train_sampler` is where Trainer builds its training sampler (a private method whose
    signature changed across releases, hence *args; if a release renames it, override
    `get_train_dataloader` and pass `sampler=` to the DataLoader). The sampler is not per-rank:
    accelerate splits each process's share of the batches itself.
    """

    def __init__(self, *args, sample_weights: SampleWeights, sample_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_weights, self.sample_ids = sample_weights, list(sample_ids)

    def _get_train_sampler(self, *args, **kwargs):
        # allow_extra: the demonstration trains on part of the rows weights.csv covers.
        return self.sample_weights.to_sampler(self.sample_ids, seed=self.args.seed, allow_extra=True)


class Rows(torch.utils.data.Dataset):
    """Feature rows as the dicts a Trainer feeds to the model: features, labels and the row number."""

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.features[i], "labels": self.labels[i], "row": torch.tensor(i)}


class MLP(nn.Module):
    """Two layers and a cross-entropy loss, returned as the Trainer expects; keeps the rows it trained on in `seen`."""

    def __init__(self, dims: int, hidden: int = 32, classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dims, hidden), nn.ReLU(), nn.Linear(hidden, classes))
        self.seen: list[int] = []

    def forward(self, features, labels=None, row=None):
        logits = self.net(features)
        if self.training and row is not None:
            self.seen.extend(row.tolist())
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def training_arguments(output_dir: str, epochs: int, batch_size: int, lr: float, seed: int) -> TrainingArguments:
    """Quiet TrainingArguments for a small CPU-or-GPU run: no checkpoints, no loggers."""
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,  # the model takes the row number too
    )


def train_and_test(X, y, groups, ids, weights: SampleWeights | None, args) -> dict[tuple, float]:
    """Train on a stratified part of the rows (weighted or not) and return test accuracy per (label, group)."""
    train, test = train_test_split(np.arange(len(y)), test_size=args.test_size, random_state=args.seed, stratify=y)
    model = MLP(X.shape[1])
    with tempfile.TemporaryDirectory() as output_dir:
        options = dict(
            model=model,
            args=training_arguments(output_dir, args.epochs, args.batch_size, args.lr, args.seed),
            train_dataset=Rows(X[train], y[train]),
        )
        trainer = (
            Trainer(**options)
            if weights is None
            else WeightedTrainer(**options, sample_weights=weights, sample_ids=ids[train])
        )
        trainer.train()
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(X[test], dtype=torch.float32))["logits"].argmax(1).numpy()
    cells: dict[tuple, float] = {}
    for label, group in sorted(set(zip(y[test], groups[test]))):
        rows = (y[test] == label) & (groups[test] == group)
        cells[(int(label), group)] = float((pred[rows] == label).mean())
    return cells


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train with and without the weights, print per-cell test accuracy; a UserError is exit code 2."""
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
    args = parser.parse_args(argv)
    try:
        result = debias.load_run(args.run)
        table = result.weights_frame
        X, y, ids = result.latents, table["label"].to_numpy(np.int64), table["sample_id"].to_numpy()
        groups = run_groups(table, args.group)
        weights = SampleWeights.load(args.weights or result.run_dir / "weights.csv")
        for name, w in (("unweighted", None), ("weighted", weights)):
            cells = train_and_test(X, y, groups, ids, w, args)
            print(f"{name:<11} worst cell {min(cells.values()):.3f}")
            for (label, group), acc in cells.items():
                print(f"    label={label} {args.group or 'group'}={group}: {acc:.3f}")
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_groups(table, group: str | None) -> np.ndarray:
    """Each row's value of the run's group attribute `group` (its group_<attr> column), or "all"."""
    if group is None:
        return np.full(len(table), "all")
    column = f"group_{group}"
    if column not in table.columns:
        known = [c[len("group_") :] for c in table.columns if c.startswith("group_")]
        raise UserError(f"--group {group!r}: the run has no such group attribute; it has: {', '.join(known) or 'none'}")
    return table[column].astype(str).to_numpy()


if __name__ == "__main__":
    sys.exit(main())
