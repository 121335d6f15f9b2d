"""The DB-VAE and the plain classifier that shares its encoder trunk.

The models know nothing about data: they take float images [B, 3, S, S] in [0, 1] (see
debias.models.to_model_input) and return a dict of named outputs.
"""

from __future__ import annotations

import torch
from torch import nn

# Four stride-2 stages take a 64x64 image to 4x4, so image sizes must be multiples of 16.
DOWNSAMPLING = 16


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    # kernel 4, stride 2, padding 1 halves the size exactly, so the decoder can mirror it.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _deconv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class EncoderTrunk(nn.Module):
    """Convolutional feature extractor shared by the DB-VAE encoder and the plain classifier."""

    def __init__(self, image_size: int = 64, width: int = 16, hidden: int = 256):
        super().__init__()
        if image_size % DOWNSAMPLING:
            raise ValueError(f"image_size must be a multiple of {DOWNSAMPLING}, got {image_size}")
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        self.features = nn.Sequential(*[_conv_block(a, b) for a, b in zip(chans, chans[1:])])
        self.out_shape = (chans[-1], image_size // DOWNSAMPLING, image_size // DOWNSAMPLING)
        flat = chans[-1] * self.out_shape[1] * self.out_shape[2]
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True))
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, hidden] of images [B, 3, S, S]."""
        return self.dense(self.features(x))


class Decoder(nn.Module):
    """Mirror of the trunk: latent z [B, k] -> image [B, 3, S, S] in [0, 1]."""

    def __init__(self, latent_dim: int, trunk_shape: tuple[int, int, int], width: int = 16):
        super().__init__()
        c, h, w = trunk_shape
        self.trunk_shape = trunk_shape
        self.dense = nn.Sequential(nn.Linear(latent_dim, c * h * w), nn.ReLU(inplace=True))
        chans = [8 * width, 4 * width, 2 * width, width]
        self.upsample = nn.Sequential(
            *[_deconv_block(a, b) for a, b in zip(chans, chans[1:])],
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed images [B, 3, S, S] from latents z [B, k]."""
        return self.upsample(self.dense(z).view(-1, *self.trunk_shape))


class DBVAE(nn.Module):
    """Debiasing VAE (Amini et al. 2019): encoder -> (class logit, mu, logvar); decoder z -> image."""

    def __init__(self, latent_dim: int = 100, image_size: int = 64, width: int = 16, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.trunk = EncoderTrunk(image_size, width, hidden)
        # One linear head emits the logit and both Gaussian parameters, as in the paper.
        self.head = nn.Linear(hidden, 1 + 2 * latent_dim)
        self.decoder = Decoder(latent_dim, self.trunk.out_shape, width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logit [B], mu [B, k], logvar [B, k]) for images x."""
        out = self.head(self.trunk(x))
        k = self.latent_dim
        return out[:, 0], out[:, 1 : 1 + k], out[:, 1 + k :]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with sigma = exp(0.5 * logvar), the variance the KL term assumes."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logit [B] only (no sampling, no decoding)."""
        return self.encode(x)[0]

    def forward(self, x: torch.Tensor, decode: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named outputs: logit, mu, logvar, z and the reconstruction.

        `decode`: the indices of the rows to reconstruct (default every row); the reconstruction
        then holds those rows in that order, and outputs["decoded"] is `decode`.
        """
        logit, mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        outputs = {"logit": logit, "mu": mu, "logvar": logvar, "z": z}
        if decode is None:
            return {**outputs, "reconstruction": self.decoder(z)}
        return {**outputs, "reconstruction": self.decoder(z[decode]), "decoded": decode}


class Classifier(nn.Module):
    """The uniform baseline: the DB-VAE's encoder trunk with only a class logit on top."""

    def __init__(self, image_size: int = 64, width: int = 16, hidden: int = 256):
        super().__init__()
        self.trunk = EncoderTrunk(image_size, width, hidden)
        self.head = nn.Linear(hidden, 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logit [B]."""
        return self.head(self.trunk(x))[:, 0]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named outputs: the class logit [B]."""
        return {"logit": self.classify(x)}
