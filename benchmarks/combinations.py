"""Which way of combining per-dimension densities finds the rare faces? (how the default was chosen)

Trains the DB-VAE for a few epochs on the embedded dataset (uniform draws, so every setting sees
the same latents), then computes the weights of every combination x alpha x cap on those
latents and prints, for the training faces, the ESS and the mean weight of each subgroup. A
useful default upweights all three rare subgroups (dark, glasses, hat) without an ESS so low
that a handful of images make up the epoch.

    python benchmarks/combinations.py                 # default settings of debias fit
    python benchmarks/combinations.py --beta 0.0005   # the public lab code's KL weight
    python benchmarks/combinations.py --latents /tmp/mu.npz   # trains once, later runs reuse the latents

A second table scores the same latents with the joint strategy (a density of the top principal
directions per class) and with histograms on the top k principal directions of the faces' means,
the obvious ways to look past the dimensions that only hold lighting and pose.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from debias.data import load_dataset
from debias.distributed import SINGLE
from debias.fit import FitConfig
from debias.fit.draws import DensityDraw
from debias.fit.trainer import Trainer
from debias.sampling import epoch_generator, uniform_indices
from debias.train import encode_all, iterate_batches, train_one_epoch
from debias.weighting import WeightingSettings, effective_sample_size, training_weights

RARE = ("dark", "glasses", "hat")


def main() -> None:
    """Train briefly (or read saved latents), then tabulate weights per subgroup for each setting."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--beta", type=float, default=FitConfig.beta)
    parser.add_argument("--latent-dim", type=int, default=FitConfig.latent_dim)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--latents",
        type=Path,
        default=None,
        help="An .npz of the trained latents: read when it exists, else written after training.",
    )
    args = parser.parse_args()

    if args.latents is not None and args.latents.exists():
        saved = np.load(args.latents)
        mu, subgroup, labels = torch.from_numpy(saved["mu"]), saved["subgroup"], torch.from_numpy(saved["labels"])
    else:
        mu, subgroup, labels = train_latents(args)
        if args.latents is not None:
            np.savez(args.latents, mu=mu.numpy(), subgroup=subgroup, labels=labels.numpy())
    faces = subgroup != "nonface"

    def row(name: str, weights: torch.Tensor) -> str:
        w = weights.numpy()
        ess = effective_sample_size(torch.from_numpy(w[faces]))
        means = [w[subgroup == g].mean() for g in ("common", *RARE)]
        share = w[np.isin(subgroup, RARE)].sum() / w[faces].sum()
        return f"{name:<30}{ess:>7.3f}" + "".join(f"{m:>9.2f}" for m in means) + f"{share:>12.3f}"

    print(
        f"synthfaces train: {faces.sum()} faces, {', '.join(f'{g} {(subgroup == g).sum()}' for g in RARE)}; "
        f"DB-VAE beta {args.beta}, latent {mu.shape[1]}, {args.epochs} epochs"
    )
    header = f"{'ESS':>7}" + "".join(f"{g:>9}" for g in ("common", *RARE)) + f"{'rare share':>12}"
    print(f"{'histogram: combine alpha cap':<30}" + header)
    for combine in ("geometric", "product", "max"):
        for alpha in (0.0, 0.001, 0.01):
            for cap in (None, 10.0):
                weights, _ = training_weights(
                    mu,
                    labels,
                    WeightingSettings(strategy="histogram", alpha=alpha, combine=combine, cap=cap),
                    vae_on_all=False,
                )
                print(row(f"{combine} {alpha} {cap}", weights))

    print(f"\n{'other ways on the same latents':<30}" + header)
    joint = WeightingSettings(strategy="joint")
    for name, settings in (
        ("joint gmm 4 dims", joint),
        ("joint gmm 8 dims", replace(joint, joint_dims=8)),
        ("joint knn 4 dims", replace(joint, joint_method="knn")),
        ("joint gmm 4 dims alpha 0.01", replace(joint, joint_alpha=0.01)),
    ):
        print(row(name, training_weights(mu, labels, settings, vae_on_all=False)[0]))
    x = mu[torch.from_numpy(faces)].double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    print(
        f"(share of variance on the top 5 principal directions of the faces: {(s[:5] ** 2 / (s**2).sum()).numpy().round(3)})"
    )
    for k in (2, 8, 16):
        z = (x @ vt[:k].T).float()
        for combine in ("max", "geometric"):
            face_w, _ = training_weights(
                z,
                torch.ones(len(z), dtype=torch.long),
                WeightingSettings(strategy="histogram", combine=combine),
                vae_on_all=True,
            )
            weights = torch.ones(len(subgroup), dtype=torch.float64)
            weights[torch.from_numpy(faces)] = face_w
            print(row(f"top {k} directions, {combine}", weights))


def train_latents(args) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Latent means of the training split after a short DB-VAE training with uniform draws."""
    dataset = load_dataset("synthfaces")
    config = FitConfig(epochs=args.epochs, beta=args.beta, latent_dim=args.latent_dim, seed=args.seed)
    cpu = torch.device("cpu")
    trainer = Trainer(DensityDraw("dbvae", dataset, config, cpu, SINGLE))  # a DB-VAE; the loop below draws uniformly
    train = dataset.train
    for epoch in range(1, args.epochs + 1):
        # uniform draws, so the latents do not depend on any of the settings compared below
        rows = uniform_indices(len(train), epoch_generator(args.seed, epoch)).numpy()
        batches = iterate_batches(train.images, train.labels, rows, config.batch_size, cpu)
        train_one_epoch(trainer.model, trainer.criterion, trainer.optimizer, batches, cpu)
    mu = encode_all(trainer.model, train.images, 512, cpu)
    return mu, train.attributes["subgroup"].to_numpy().astype(str), torch.tensor(train.labels)


if __name__ == "__main__":
    main()
