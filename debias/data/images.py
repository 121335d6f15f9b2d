"""Turning one image file into the square uint8 array every dataset stores: decode, center-crop, resize.

Whatever the file holds comes out as 8-bit RGB, upright:

- 16-bit images (PNG through torchvision, which returns uint16; 16-bit grey TIFF or PNG through
  Pillow, modes I;16 and I) are scaled to 8 bits, round(v / 257), not truncated: raw uint16
  values in a uint8 cache read back as noise, and Pillow's convert("RGB") clips them to white.
- EXIF orientation is applied, so a phone photo stored sideways with an orientation tag loads
  the way every viewer shows it.
- An animated GIF gives its first frame.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

# torchvision 0.29 warns on every decode that TorchCodec will take over image I/O; pyproject pins
# torchvision <= 0.29.1 and Pillow is the fallback below, so the per-image warning is only noise.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)

# torchvision decodes these itself; Pillow (the fallback) reads BMP, TIFF, PPM/PGM and more.
NOT_AN_IMAGE = "not an image file that torchvision or Pillow can read (JPEG, PNG, GIF, WEBP, BMP, TIFF, PPM)"
# Pillow modes whose pixels are 16-bit integers (I: 32-bit storage, which Pillow also uses for 16-bit grey).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageDecodeError(Exception):
    """An image file exists but cannot be read or decoded; the cache turns it into a UserError."""


def decode_image_file(path: str | Path, image_size: int) -> torch.Tensor:
    """Decode `path` to 8-bit RGB (upright), center-crop it to a square of its short side, resize to `image_size`.

    Returns a uint8 tensor [image_size, image_size, 3] (channels last, as the cache stores it).
    CelebA's 178x218 aligned faces become their central 178x178 square, the usual crop for them.
    Raises ImageDecodeError (with the reason; the caller knows the path) for an empty, truncated
    or unsupported file, and OSError when it cannot be read at all.
    """
    # Read here rather than with torchvision's read_file, whose failures are RuntimeErrors without
    # errno: a missing file, a permission problem or a symbolic link loop stays an OSError.
    data = Path(path).read_bytes()
    if not data:
        raise ImageDecodeError("is empty (0 bytes)")
    try:
        encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        image = decode_image(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError as torchvision_error:
        image = _decode_with_pillow(data, torchvision_error)
    if image.ndim == 4:  # an animated GIF: [frames, 3, H, W]
        image = image[0]
    image = to_uint8(image)
    if image.ndim != 3 or image.shape[0] != 3 or min(image.shape[-2:]) == 0:
        raise ImageDecodeError(f"decoded to an unexpected shape {tuple(image.shape)} instead of 3 x H x W")
    side = min(image.shape[-2:])
    image = F.center_crop(image, [side, side])
    image = F.resize(image, [image_size, image_size], antialias=True)
    return image.permute(1, 2, 0).contiguous()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """`image` as uint8: unchanged if it is, 16-bit values v scaled to round(v * 255 / 65535)."""
    if image.dtype == torch.uint8:
        return image
    if image.dtype in (torch.uint16, torch.int32, torch.int64):
        wide = image.to(torch.int64).clamp_(0, 65535)
        # round(v / 257) in integers: 65535 / 255 = 257 exactly, so 8-bit v * 257 comes back as v.
        return torch.div(wide * 255 + 32767, 65535, rounding_mode="floor").to(torch.uint8)
    raise ImageDecodeError(f"has {image.dtype} pixels; save it with 8 or 16 bits per channel")


def _decode_with_pillow(data: bytes, torchvision_error: Exception) -> torch.Tensor:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as pil_image:
            pil_image.seek(0)  # the first frame of an animation
            pil_image = ImageOps.exif_transpose(pil_image)
            if pil_image.mode in SIXTEEN_BIT_MODES:
                grey = to_uint8(torch.from_numpy(np.asarray(pil_image).astype(np.int64)))
                return grey.unsqueeze(0).expand(3, -1, -1).contiguous()
            if pil_image.mode == "F":
                raise ImageDecodeError(
                    "has floating-point pixels (Pillow mode F); save it with 8 or 16 bits per channel"
                )
            return F.pil_to_tensor(pil_image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as pil_error:
        tv_text = (str(torchvision_error).splitlines() or [""])[0]
        tv_reason = tv_text.split(", ")[-1]  # after torchvision's "function, file.cpp:line, " prefix
        if tv_reason and "Unsupported image file" not in tv_text:
            raise ImageDecodeError(tv_reason) from pil_error  # torchvision knew the format: its reason is precise
        if isinstance(pil_error, UnidentifiedImageError) and not has_image_signature(data):
            raise ImageDecodeError(NOT_AN_IMAGE) from pil_error
        raise ImageDecodeError(str(pil_error)) from pil_error


def looks_like_image(prefix: bytes, path: str | Path) -> bool:
    """Whether a file starting with `prefix` (its first 32 bytes or more) at `path` is an image, from its header alone.

    False for a text file named .jpg, a macOS `._x.jpg` AppleDouble file or an empty file; True
    for a file that starts like an image but is damaged (decoding it later names it).
    """
    from PIL import Image, UnidentifiedImageError

    if not prefix:
        return False
    if has_image_signature(prefix):
        return True
    try:  # formats Pillow recognises without a signature check of their own
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def has_image_signature(data: bytes) -> bool:
    """Whether `data` starts with the signature of a format Pillow knows (its own checks, not a list of ours)."""
    prefix = data[:16]  # what Image.open hands its format checks
    for accept in _signature_checks() if prefix else ():
        try:
            if accept(prefix):
                return True
        except (SyntaxError, IndexError, TypeError, struct.error):  # a prefix too short for the check
            continue
    return False


@functools.cache
def _signature_checks() -> tuple:
    from PIL import Image

    Image.init()
    # The formats photos come in first: a folder of 200,000 JPEGs then costs one check per file.
    common = [name for name in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF") if name in Image.OPEN]
    order = common + [name for name in Image.OPEN if name not in common]
    return tuple(Image.OPEN[name][1] for name in order if Image.OPEN[name][1] is not None)
