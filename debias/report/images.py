"""Pictures for the report: thumbnails, DB-VAE reconstructions and latent traversals, as PNG bytes.

Images are uint8 [N, H, W, 3] throughout (the dataset's own layout); the model sees them through
`debias.models.to_model_input`, the same preprocessing training used.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from debias.models import DBVAE, to_model_input

# Steps along a latent direction, in standard deviations of mu over the training set: +-3 sd
# covers nearly every training image, so the ends show the extremes the model has seen.
TRAVERSAL_STEPS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of one uint8 [H, W, 3] image (no metadata, so nothing names a URL)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def grid(images: np.ndarray, pad: int = 2, background: int = 255) -> np.ndarray:
    """Tile uint8 images [rows, cols, H, W, 3] into one image with `pad` pixels between tiles."""
    rows, cols, h, w, _ = images.shape
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), background, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[r, c]
    return out


def load_dbvae(checkpoint: dict, settings: dict) -> DBVAE:
    """The run's DB-VAE in eval mode, rebuilt from config.json's settings and checkpoint.pt (RunFolder.checkpoint)."""
    models = checkpoint["models"]
    if "dbvae" not in models:
        raise KeyError("checkpoint.pt holds no 'dbvae' model")
    model = DBVAE(int(settings["latent_dim"]), int(settings["image_size"]), int(settings.get("width", 16)))
    model.load_state_dict(models["dbvae"])
    return model.eval()


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    """Float images [B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3]."""
    return (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def reconstructions(model: DBVAE, images: np.ndarray) -> np.ndarray:
    """Decoded latent means of uint8 images [N, H, W, 3] -> uint8 [N, H, W, 3].

    Decoding mu rather than a sampled z shows what the latent code holds, without sampling noise.
    """
    x = to_model_input(torch.from_numpy(np.ascontiguousarray(images)))
    _, mu, _ = model.encode(x)
    return _to_uint8(model.decoder(mu))


def varying_dimensions(latents: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` latent dimensions whose mu varies most, largest variance first."""
    variance = np.nanvar(latents, axis=0)
    return np.argsort(-variance, kind="stable")[:count]


@torch.no_grad()
def traversals(model: DBVAE, latents: np.ndarray, dims: np.ndarray, steps=TRAVERSAL_STEPS) -> np.ndarray:
    """uint8 [len(dims), len(steps), H, W, 3]: decode mean(mu) + t * sd(mu) along each dimension.

    Row i moves only dimension dims[i]; every other coordinate stays at the training mean.
    """
    mean = torch.from_numpy(np.nanmean(latents, axis=0).astype(np.float32))
    sd = torch.from_numpy(np.nanstd(latents, axis=0).astype(np.float32))
    rows = []
    for d in dims:
        z = mean.repeat(len(steps), 1)
        z[:, int(d)] += torch.tensor(steps, dtype=torch.float32) * sd[int(d)]
        rows.append(_to_uint8(model.decoder(z)))
    return np.stack(rows)


def upscale(image: np.ndarray, min_side: int = 96) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor so the short side is >= `min_side`.

    Browsers and printers smooth small images when they scale them; integer upsampling here
    keeps 32 px faces crisp at thumbnail size.
    """
    factor = max(1, -(-min_side // min(image.shape[:2])))
    if factor == 1:
        return image
    return image.repeat(factor, axis=0).repeat(factor, axis=1)
