"""Turning one image file into the square uint8 array every dataset stores: decode, center-crop, resize."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

# torchvision 0.29 warns on every decode that TorchCodec will take over image I/O; pyproject pins
# torchvision <= 0.29.1 and Pillow is the fallback below, so the per-image warning is only noise.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)


class ImageDecodeError(Exception):
    """An image file exists but cannot be read or decoded; the cache turns it into a UserError."""


def decode_image_file(path: str | Path, image_size: int) -> torch.Tensor:
    """Decode `path` to RGB, center-crop it to a square of its short side, resize to `image_size`.

    Returns a uint8 tensor [image_size, image_size, 3] (channels last, as the cache stores it).
    CelebA's 178x218 aligned faces become their central 178x178 square, the usual crop for them.
    Raises ImageDecodeError (with the reason; the caller knows the path) for an empty, truncated
    or unsupported file, and OSError when it cannot be read at all.
    """
    path = str(path)
    try:
        image = decode_image(read_file(path), mode=ImageReadMode.RGB)
    except RuntimeError as torchvision_error:
        # torchvision reads JPEG, PNG, WEBP and GIF; ImageFolder also admits BMP, TIFF, PPM, PGM.
        image = _decode_with_pillow(path, torchvision_error)
    side = min(image.shape[-2:])
    image = F.center_crop(image, [side, side])
    image = F.resize(image, [image_size, image_size], antialias=True)
    return image.permute(1, 2, 0).contiguous()


def _decode_with_pillow(path: str, torchvision_error: Exception) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as pil_image:
            pil_image = pil_image.convert("RGB")
            return F.pil_to_tensor(pil_image)
    except (OSError, UnidentifiedImageError, ValueError) as pil_error:
        reason = str(torchvision_error).splitlines()[0].split(", ")[-1] or str(pil_error)
        raise ImageDecodeError(reason) from pil_error
