"""Every image reaches the cache as upright 8-bit RGB: 16-bit PNG and TIFF, EXIF orientation, animated GIF, non-images.

The files are written here in their real formats: Pillow writes the 8-bit and 16-bit grey ones;
16-bit RGB, which Pillow cannot write, is encoded by hand (PNG: zlib and CRC chunks; TIFF: a
baseline uncompressed file), byte for byte as the specifications lay them out.
"""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from debias.data import images
from debias.data.cache import cached_images
from debias.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

SIZE = 16


def picture16(seed: int, height: int = 24, width: int = 24) -> np.ndarray:
    """A 16-bit RGB picture with structure (gradients) and fine detail (noise) in every channel."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 65535, width)[None, :, None] * np.linspace(0.2, 1, height)[:, None, None]
    noise = rng.integers(0, 9000, size=(height, width, 3))
    return np.clip(ramp * np.array([1.0, 0.6, 0.3]) + noise, 0, 65535).astype(np.uint16)


def eight_bit(picture: np.ndarray) -> np.ndarray:
    """The 8-bit version of a 16-bit picture, as an image editor exports it: round(v / 257)."""
    return np.round(picture / 257).astype(np.uint8)


def write_png16(path, rgb: np.ndarray):
    """A 16-bit-per-channel RGB PNG (colour type 2, bit depth 16, big-endian samples)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def write_tiff16_rgb(path, rgb: np.ndarray):
    """A baseline little-endian uncompressed TIFF with three 16-bit samples per pixel."""
    height, width, _ = rgb.shape
    pixels = rgb.astype("<u2").tobytes()
    bits_at, pixels_at = 8, 14
    ifd_at = pixels_at + len(pixels)
    entries = [  # (tag, type: 3 SHORT / 4 LONG, count, value or offset)
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, bits_at),  # BitsPerSample 16,16,16, stored at bits_at
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, pixels_at),
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),  # chunky
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<HHH", 16, 16, 16) + pixels + ifd)
    return path


def test_16_bit_png_and_tiff_are_cached_as_their_8_bit_versions(tmp_path):
    rgb16 = [picture16(seed) for seed in range(3)]
    grey16 = picture16(7)[..., 1]
    files = [
        write_png16(tmp_path / "rgb16.png", rgb16[0]),
        write_tiff16_rgb(tmp_path / "rgb16.tif", rgb16[1]),
        tmp_path / "grey16.png",
        tmp_path / "grey16.tif",
        write_png16(tmp_path / "rgb16-b.png", rgb16[2]),
    ]
    Image.fromarray(grey16).save(files[2])  # Pillow writes 16-bit grey as mode I;16
    Image.fromarray(grey16).save(files[3])
    assert Image.open(files[3]).mode == "I;16" and Image.open(files[0]).getextrema()  # real 16-bit files
    references = []  # the same pictures saved at 8 bits, decoded in the same cache build
    for i, picture in enumerate([rgb16[0], rgb16[1], np.stack([grey16] * 3, -1), np.stack([grey16] * 3, -1), rgb16[2]]):
        references.append(tmp_path / f"ref{i}.png")
        Image.fromarray(eight_bit(picture)).save(references[-1])

    # 8-bit and 16-bit files mixed in one chunk, as a real folder mixes them.
    array = cached_images(files + references, SIZE, ("mixed",), cache_dir=tmp_path / "cache", workers=0)
    assert array.dtype == np.uint8 and array.shape == (10, SIZE, SIZE, 3)
    for i, name in enumerate(f.name for f in files):
        difference = np.abs(array[i].astype(int) - array[5 + i].astype(int))
        assert difference.max() <= 1, (name, difference.max())
        assert array[i].std() > 20, name  # a picture, not a flat white (clipped) or black square
    # The published array holds exactly N x S x S x 3 bytes of pixels (16-bit data would be twice that).
    (npy,) = (tmp_path / "cache").glob("*.npy")
    assert npy.stat().st_size - np.load(npy, mmap_mode="r").offset == 10 * SIZE * SIZE * 3


def test_to_uint8_scales_instead_of_truncating():
    values = torch.tensor([0, 128, 257, 32896, 65278, 65535], dtype=torch.uint16)
    assert images.to_uint8(values).tolist() == [0, 0, 1, 128, 254, 255]
    eight = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(images.to_uint8(eight.to(torch.int32) * 257), eight)


def exif_orientation_6(path, fmt: str):
    """A 40x20 picture, left half white, stored with EXIF orientation 6 (show rotated 90 degrees clockwise)."""
    picture = Image.new("RGB", (40, 20), (0, 0, 0))
    picture.paste((255, 255, 255), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(path, format=fmt, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("name, fmt", [("photo.jpg", "JPEG"), ("photo.tif", "TIFF")])
def test_exif_orientation_is_applied(tmp_path, name, fmt):
    # Upright, the picture is 20 wide and 40 tall with its white half on top; the center crop
    # (20x20 at rows 10-30) is white above the middle and black below it. Stored sideways, the
    # same crop would be half white on the left instead.
    decoded = images.decode_image_file(exif_orientation_6(tmp_path / name, fmt), 20).int()
    assert decoded[:8].min() > 200 and decoded[12:].max() < 60, fmt
    assert abs(decoded[:, :8].float().mean() - decoded[:, 12:].float().mean()) < 10


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 10), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = images.decode_image_file(tmp_path / "anim.gif", 8)
    assert decoded.shape == (8, 8, 3) and decoded.dtype == torch.uint8
    assert decoded[..., 0].min() > 240 and decoded[..., 1:].max() < 15  # red, the first frame


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.jpg", b"shopping list: eggs, milk\n"),
        ("._face.jpg", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)),  # AppleDouble
        ("empty.jpg", b""),
    ],
)
def test_a_listed_non_image_is_an_error_naming_the_file(tmp_path, name, content):
    good = tmp_path / "good.png"
    Image.new("RGB", (10, 10), (1, 2, 3)).save(good)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError) as caught:
        cached_images([good, tmp_path / name], SIZE, ("x",), cache_dir=tmp_path / "cache", workers=0)
    message = str(caught.value)
    assert f"cannot read image {tmp_path / name}: " in message
    assert ("is empty (0 bytes)" if not content else "not an image file that torchvision or Pillow can read") in message
    assert "decode_avif" not in message and not list((tmp_path / "cache").glob("*.npy"))
