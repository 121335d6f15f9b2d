"""Which way of combining per-dimension densities finds the rare faces? (how the default was chosen)

Trains the DB-VAE for a few epochs on the embedded dataset (uniform draws, so every setting sees
the same latents), then computes the weights of every combination x alpha x cap on those
latents and prints, for the training faces, the ESS and the mean weight of each subgroup. A
useful default upweights all three rare subgroups (dark, glasses, hat) without an ESS so low
that a handful of images make up the epoch.

    python benchmarks/combinations.py                 # default settings of debias fit
    python benchmarks/combinations.py --beta 0.0005   # the public lab code's KL weight
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from debias.data import load_dataset
from debias.fit import FitConfig, _Trainer
from debias.sampling import epoch_generator, uniform_indices
from debias.train import encode_all, iterate_batches, train_one_epoch
from debias.weighting import WeightingSettings, effective_sample_size, training_weights

RARE = ("dark", "glasses", "hat")


def main() -> None:
    """Train briefly, then tabulate weights per subgroup for each combination."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--beta", type=float, default=FitConfig.beta)
    parser.add_argument("--latent-dim", type=int, default=FitConfig.latent_dim)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = load_dataset("synthfaces")
    config = FitConfig(epochs=args.epochs, beta=args.beta, latent_dim=args.latent_dim, seed=args.seed)
    cpu = torch.device("cpu")
    trainer = _Trainer("dbvae", dataset, config, cpu)
    train = dataset.train
    for epoch in range(1, args.epochs + 1):
        # uniform draws, so the latents do not depend on any of the settings compared below
        rows = uniform_indices(len(train), epoch_generator(args.seed, epoch)).numpy()
        batches = iterate_batches(train.images, train.labels, rows, config.batch_size, cpu)
        train_one_epoch(trainer.model, trainer.criterion, trainer.optimizer, batches, cpu)
    mu = encode_all(trainer.model, train.images, 512, cpu)
    subgroup = dataset.train.attributes["subgroup"].to_numpy()
    faces = subgroup != "nonface"
    labels = torch.tensor(dataset.train.labels)

    print(f"synthfaces train: {faces.sum()} faces, {', '.join(f'{g} {(subgroup == g).sum()}' for g in RARE)}; "
          f"DB-VAE beta {args.beta}, latent {args.latent_dim}, {args.epochs} epochs")
    print(f"{'combine':<10}{'alpha':>7}{'cap':>6}{'ESS':>7}" + "".join(f"{g:>9}" for g in ("common", *RARE)) + f"{'rare share':>12}")
    for combine in ("geometric", "product", "max"):
        for alpha in (0.0, 0.001, 0.01):
            for cap in (None, 10.0):
                weights, _ = training_weights(mu, labels, WeightingSettings(alpha=alpha, combine=combine, cap=cap), vae_on_all=False)
                w = weights.numpy()
                ess = effective_sample_size(torch.from_numpy(w[faces]))
                means = [w[subgroup == g].mean() for g in ("common", *RARE)]
                share = w[np.isin(subgroup, RARE)].sum() / w[faces].sum()
                print(f"{combine:<10}{alpha:>7}{str(cap):>6}{ess:>7.3f}" + "".join(f"{m:>9.2f}" for m in means) + f"{share:>12.3f}")


if __name__ == "__main__":
    main()
