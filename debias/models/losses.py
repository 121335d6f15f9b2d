"""Losses as dicts of named per-batch terms; `total` is the one to backpropagate."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions: [B]."""
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(dim=1)


def reconstruction_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute error (the paper's L1 reconstruction loss): [B]."""
    return (x - x_hat).abs().flatten(1).mean(dim=1)


def classifier_loss(outputs: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Binary cross-entropy of the class logit; `x` is unused and accepted for a common signature."""
    bce = F.binary_cross_entropy_with_logits(outputs["logit"].float(), y.reshape(-1).float())
    return {"total": bce, "classification": bce}


class DBVAELoss:
    """c1 * BCE for every sample + 1[VAE applies] * (reconstruction + beta * KL).

    The VAE terms apply to positives only (face detection, where negatives are not faces), or to
    every sample when `vae_on_all` (attribute tasks where every image is a face). The indicator
    multiplies per-sample [B] terms, never a [B, 1] column against a [B] row, which would
    broadcast to [B, B] and leak the VAE loss onto negatives.
    """

    def __init__(self, beta: float, vae_on_all: bool, classification_weight: float = 1.0):
        self.beta = beta
        self.vae_on_all = vae_on_all
        self.classification_weight = classification_weight

    def vae_mask(self, y: torch.Tensor) -> torch.Tensor:
        """1.0 where the VAE terms apply, else 0.0: shape [B]."""
        y = y.reshape(-1)
        return torch.ones_like(y, dtype=torch.float32) if self.vae_on_all else (y == 1).float()

    def forward_kwargs(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """What DBVAE.forward needs beyond the images: in face detection, `decode`, the rows the VAE terms read.

        The reconstruction of a non-face is multiplied by 0, so decoding it is wasted work (as much
        again as the faces' in a half-and-half batch). Empty (decode every row) when the VAE
        models every image, and when the batch holds no face: batch norm needs rows, and under DDP
        every rank must run the decoder. Reading the faces' positions waits for the labels on a GPU.
        """
        if self.vae_on_all:
            return {}
        faces = torch.nonzero(y.reshape(-1) == 1).reshape(-1)
        return {"decode": faces} if len(faces) else {}

    def per_sample(self, outputs: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term per sample, [B] tensors, with the indicator already applied to VAE terms.

        With outputs["decoded"] (rows decoded, see `forward_kwargs`) the other rows' reconstruction
        error is 0; they must be rows the indicator zeroes.
        """
        y = y.reshape(-1)
        mask = self.vae_mask(y)
        bce = F.binary_cross_entropy_with_logits(outputs["logit"].float(), y.float(), reduction="none")
        if "decoded" in outputs:
            rows = outputs["decoded"]
            recon = bce.new_zeros(len(y)).index_copy(
                0, rows, reconstruction_error(x[rows].float(), outputs["reconstruction"].float())
            )
        else:
            recon = reconstruction_error(x.float(), outputs["reconstruction"].float())
        kl = kl_divergence(outputs["mu"].float(), outputs["logvar"].float())
        assert bce.shape == recon.shape == kl.shape == mask.shape, "per-sample terms must all be [B]"
        return {
            "classification": self.classification_weight * bce,
            "reconstruction": mask * recon,
            "kl": mask * kl,
        }

    def __call__(self, outputs: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of each term and `total` = classification + reconstruction + beta * kl."""
        terms = {name: value.mean() for name, value in self.per_sample(outputs, x, y).items()}
        terms["total"] = terms["classification"] + terms["reconstruction"] + self.beta * terms["kl"]
        return terms
