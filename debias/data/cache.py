"""The decoded-image cache: every image decoded, cropped and resized once into a memory-mapped uint8 array.

On disk, under the cache directory, one build is two files with a common stem
`<dataset>-<size>px-<key>`:

    <stem>.npy    uint8 [N, S, S, 3] in numpy's .npy format, opened with mmap_mode="r"
    <stem>.json   the index: format version, key, shape; written last, atomically

A cache is complete only when its index exists and matches the array, so a build that dies
at any point (exception, Ctrl-C, kill -9, full disk) is rebuilt on the next run, never read.
The key hashes the dataset name, every file's path, size and mtime, the image size and the
format version: any change to the file list or the files themselves selects a new cache.

One process builds a given cache at a time: the builder holds `<stem>.lock` (debias.locks, an
OS lock the kernel drops when the builder dies, wherever it runs). Another process that needs
the same cache waits for it and then reads what it built; a builder that finds partial files
of its stem while holding the lock knows their writer is dead, whichever machine or container
it ran in, and removes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from debias import locks, oserrors
from debias.data import images
from debias.errors import UserError

# Bump whenever decode_image_file's output changes (crop, interpolation): old caches then go unused.
# 2: 16-bit images scaled to 8 bits (version 1 stored their raw bytes), EXIF orientation applied.
CACHE_FORMAT_VERSION = 2
# Kept free beyond the array itself, so a build never fills the disk to its last byte.
SPARE_BYTES = 64 * 2**20

# Images per chunk handed from a worker to the writer; large enough to amortise inter-process
# transfer, small enough that a chunk (256 x 64x64x3 = 3 MB) never matters for memory.
CHUNK_SIZE = 256


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: `cache_dir` if given, else $DEBIAS_CACHE, else ~/.cache/debias."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("DEBIAS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "debias"


def default_workers() -> int:
    """Decoding processes used when none are asked for: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def cache_key(paths: Sequence[Path], image_size: int, key_parts: Sequence[str]) -> str:
    """Hex digest identifying one build: format version, key_parts, image size and every file's stat.

    Raises UserError naming the missing files when any path does not exist.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT_VERSION, [str(p) for p in key_parts], int(image_size)]).encode())
    missing = []
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            missing.append(str(path))
            continue
        except OSError as error:  # a symbolic link loop, a path too long, a folder without permission
            raise UserError(
                f"cannot read image {oserrors.shown_path(path)}: {oserrors.reason(error)}. {oserrors.advice(error)}"
            ) from None
        digest.update(f"{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    if missing:
        examples = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(
            f"{len(missing)} of {len(paths)} listed images do not exist:\n  {examples}{more}\n"
            "Check that the download or copy is complete (see data/README.md), or remove them from the list."
        )
    return digest.hexdigest()[:20]


def cached_images(
    paths: Sequence[str | Path],
    image_size: int,
    key_parts: Sequence[str],
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    desc: str | None = None,
    progress: bool = True,
) -> np.memmap:
    """All `paths` decoded, center-cropped and resized, as a read-only uint8 memmap [N, S, S, 3].

    Reads the cache when a complete one for exactly these files exists (no image is decoded);
    otherwise decodes every image once with `workers` processes (0: in this process; None: see
    default_workers) and a progress bar on stderr (unless `progress` is False), then publishes the array. `key_parts` starts with the
    dataset name (used in the file name). Raises UserError for a missing or unreadable image or
    an unusable cache directory.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no images to load: the file list is empty")
    image_size = int(image_size)
    directory = resolve_cache_dir(cache_dir)
    key = cache_key(paths, image_size, key_parts)
    stem = f"{_safe_name(key_parts[0] if key_parts else 'images')}-{image_size}px-{key}"
    array_path = directory / f"{stem}.npy"
    index_path = directory / f"{stem}.json"
    shape = (len(paths), image_size, image_size, 3)

    cached = _open_complete(array_path, index_path, key, shape)
    if cached is not None:
        return cached

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the cache directory {oserrors.shown_path(directory)}: {oserrors.reason(error)}. "
            "Pass --cache-dir or set DEBIAS_CACHE."
        ) from None
    try:
        lock = locks.acquire(directory / f"{stem}.lock", wait=True, on_wait=_say_waiting(directory, stem, progress))
    except OSError as error:
        raise UserError(
            f"cannot write in the cache directory {oserrors.shown_path(directory)}: {oserrors.reason(error)}. "
            "Pass --cache-dir or set DEBIAS_CACHE."
        ) from None
    with lock:
        # Whoever held the lock before us may have built exactly this cache.
        cached = _open_complete(array_path, index_path, key, shape)
        if cached is not None:
            return cached
        _remove_dead_partials(directory, stem)
        _check_free_space(directory, int(np.prod(shape)))
        _build(paths, image_size, key, key_parts, shape, array_path, index_path, workers, desc or stem, progress)

    cached = _open_complete(array_path, index_path, key, shape)
    if cached is None:  # another process replaced it between our rename and our read
        raise UserError(f"the image cache {array_path} changed while it was being written; run again")
    return cached


def _build(paths, image_size, key, key_parts, shape, array_path: Path, index_path: Path, workers, desc, progress):
    """Decode every image into a partial file, then publish the array and, last, its index."""
    directory, stem = array_path.parent, array_path.stem
    started = time.time()
    partial = directory / f"{stem}.partial-{os.getpid()}-{secrets.token_hex(4)}.npy"
    try:
        # open_memmap writes the .npy header and sizes the file; the pixels are then appended with
        # plain writes, so the build never holds mapped pages (memory stays at a few chunks).
        header = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        offset = header.offset
        del header
        with open(partial, "r+b") as out:
            out.seek(offset)
            n_workers = default_workers() if workers is None else int(workers)
            _fill(out, paths, image_size, n_workers, desc, progress)
            out.flush()
            os.fsync(out.fileno())  # the data must be on disk before the rename can say "done"
        # Order matters: array first, index last, each by an atomic rename. An index only ever
        # appears next to a finished array.
        os.replace(partial, array_path)
        index = {
            "format": CACHE_FORMAT_VERSION,
            "key": key,
            "key_parts": [str(p) for p in key_parts],
            "shape": list(shape),
            "dtype": "uint8",
            "array": array_path.name,
            "first_file": str(paths[0]),
            "build_seconds": round(time.time() - started, 2),
        }
        index_tmp = directory / f"{stem}.json.partial-{os.getpid()}-{secrets.token_hex(4)}"
        with open(index_tmp, "w") as handle:
            handle.write(json.dumps(index, indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(index_tmp, index_path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        for leftover in directory.glob(f"{stem}.json.partial-{os.getpid()}-*"):
            leftover.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(
                f"could not write the image cache in {oserrors.shown_path(directory)}: {oserrors.reason(error)}. "
                "Pass --cache-dir on another disk, or set DEBIAS_CACHE."
            ) from error
        raise


def _open_complete(array_path: Path, index_path: Path, key: str, shape: tuple[int, ...]) -> np.memmap | None:
    try:
        index = json.loads(index_path.read_text())
        if (
            index.get("format") != CACHE_FORMAT_VERSION
            or index.get("key") != key
            or tuple(index.get("shape", ())) != shape
        ):
            return None
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != shape or array.dtype != np.uint8:
        return None
    return array


class _DecodeFiles(torch.utils.data.Dataset):
    """Index -> (index, decoded image, error text); errors travel as text so the main process can
    raise one UserError naming the file instead of a worker traceback."""

    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.paths = [str(p) for p in paths]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            # Looked up at call time so tests can count or break decoding by patching images.
            return i, images.decode_image_file(self.paths[i], self.image_size), ""
        except OSError as error:
            return i, self._blank(), f"{oserrors.shown_path(self.paths[i])}: {oserrors.reason(error)}"
        except (images.ImageDecodeError, RuntimeError) as error:
            return i, self._blank(), f"{self.paths[i]}: {error}"

    def _blank(self) -> torch.Tensor:
        return torch.zeros(self.image_size, self.image_size, 3, dtype=torch.uint8)


def _fill(out, paths: Sequence[Path], image_size: int, workers: int, desc: str, progress: bool) -> None:
    """Decode `paths` in order and write their pixels to the binary file `out` at its position."""
    loader = DataLoader(
        _DecodeFiles(paths, image_size),
        batch_size=CHUNK_SIZE,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )
    with tqdm(total=len(paths), desc=f"decoding {desc}", unit="img", mininterval=0.5, disable=not progress) as bar:
        for indices, chunk, errors in loader:
            bad = [e for e in errors if e]
            if bad:
                raise UserError(
                    f"cannot read image {bad[0]}\n"
                    "The file is damaged or not an image: re-download it (see data/README.md) or remove it from the list."
                )
            # The last guard before bytes reach the cache: anything but uint8 [n, S, S, 3] would
            # read back as other pixels (16-bit values as noise), so it is a bug, never written.
            expected = (len(indices), image_size, image_size, 3)
            if chunk.dtype != torch.uint8 or tuple(chunk.shape) != expected:
                raise RuntimeError(f"decoded images are {chunk.dtype} {tuple(chunk.shape)}, not uint8 {expected}")
            out.write(memoryview(chunk.numpy()))  # chunks arrive in order: the sampler is sequential
            bar.update(len(indices))


def _collate(items):
    indices = [i for i, _, _ in items]
    # A tensor, not a numpy array, so that worker processes hand it over through shared memory.
    return indices, torch.stack([image for _, image, _ in items]), [error for _, _, error in items]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "images"


def _say_waiting(directory: Path, stem: str, progress: bool):
    def say(holder: dict) -> None:
        if progress:
            print(
                f"waiting for {locks.describe_holder(holder)}, which is building the image cache {directory / stem}",
                file=sys.stderr,
                flush=True,
            )

    return say


def _remove_dead_partials(directory: Path, stem: str) -> None:
    # Called while holding the stem's lock: no live process writes these, so their writer died
    # (kill -9, power loss) wherever it ran.
    for leftover in directory.glob(f"{stem}.*partial-*"):
        leftover.unlink(missing_ok=True)


def format_size(n_bytes: float) -> str:
    """Bytes in the unit that reads best: '360 KiB', '12.3 MiB', '2.50 GiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return (
                f"{value:.2f} {unit}"
                if unit == "GiB"
                else f"{value:.1f} {unit}"
                if value < 100
                else f"{value:.0f} {unit}"
            )
    return f"{int(n_bytes)} bytes"


def _check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed + SPARE_BYTES:
        raise UserError(
            f"the image cache needs {format_size(needed)} (and {format_size(SPARE_BYTES)} to spare) but "
            f"{directory} has {format_size(free)} free. "
            "Pass --cache-dir on a larger disk, set DEBIAS_CACHE, or use a smaller --image-size or --limit."
        )
