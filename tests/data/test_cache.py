"""The decoded-image cache: reused without decoding, rebuilt on change, never trusted half-built."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import image_color, write_jpeg

from debias.data import cache, images
from debias.data.cache import cached_images, resolve_cache_dir
from debias.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

SIZE = 8


@pytest.fixture
def files(tmp_path):
    """12 small JPEGs of known colours."""
    return [write_jpeg(tmp_path / "img" / f"{i:02d}.jpg", image_color(i), 32, 32) for i in range(12)]


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts calls of the one decode function (the real one still runs)."""
    calls = []
    real = images.decode_image_file

    def counting(path, image_size):
        calls.append(path)
        return real(path, image_size)

    monkeypatch.setattr(images, "decode_image_file", counting)
    return calls


def forbid_decoding(monkeypatch):
    def fail(path, image_size):
        raise AssertionError(f"decoded {path} although a complete cache exists")

    monkeypatch.setattr(images, "decode_image_file", fail)


def cache_files(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def build(files, directory, **options):
    return cached_images(files, SIZE, ("test",), cache_dir=directory, workers=options.pop("workers", 0), **options)


def test_resolve_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir(None) == tmp_path / "env"
    monkeypatch.delenv("DEBIAS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "debias"


def test_builds_the_decoded_array(files, tmp_path, decode_calls):
    array = build(files, tmp_path / "c")
    assert isinstance(array, np.memmap) and array.shape == (12, SIZE, SIZE, 3) and array.dtype == np.uint8
    for i in range(12):
        assert np.abs(array[i].astype(int) - image_color(i)).max() <= 16
    assert len(decode_calls) == 12
    with pytest.raises(ValueError, match="read-only"):
        array[0, 0, 0, 0] = 0
    names = cache_files(tmp_path / "c")
    assert (
        len(names) == 2 and names[0].startswith("test-8px-") and {n.rsplit(".", 1)[1] for n in names} == {"json", "npy"}
    )


def test_second_run_reads_the_cache_without_decoding(files, tmp_path, monkeypatch):
    first = np.array(build(files, tmp_path / "c"))
    forbid_decoding(monkeypatch)
    second = build(files, tmp_path / "c")
    np.testing.assert_array_equal(second, first)


def test_changed_file_list_size_or_file_rebuilds(files, tmp_path, decode_calls):
    directory = tmp_path / "c"
    build(files, directory)
    build(files[:-1], directory)  # one file fewer
    assert len(decode_calls) == 12 + 11
    cached_images(files, 4, ("test",), cache_dir=directory, workers=0)  # another image size
    assert len(decode_calls) == 12 + 11 + 12
    write_jpeg(files[3], (250, 250, 250), 32, 40)  # same name, new content (size/mtime change)
    os.utime(files[3], ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    array = build(files, directory)
    assert len(decode_calls) == 12 + 11 + 12 + 12
    assert array[3].min() > 235
    build(files, directory)
    assert len(decode_calls) == 12 + 11 + 12 + 12  # and that one is reused


def test_parallel_workers_give_the_same_array(files, tmp_path):
    serial = np.array(build(files, tmp_path / "serial", workers=0))
    parallel = np.array(build(files, tmp_path / "parallel", workers=2))
    np.testing.assert_array_equal(parallel, serial)


def test_exception_mid_build_leaves_no_cache(files, tmp_path, monkeypatch):
    directory = tmp_path / "c"
    monkeypatch.setattr(cache, "CHUNK_SIZE", 2)  # so some chunks are written before the crash
    real = images.decode_image_file
    calls = []

    def crash_on_seventh(path, image_size):
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(path, image_size)

    monkeypatch.setattr(images, "decode_image_file", crash_on_seventh)
    with pytest.raises(KeyboardInterrupt):
        build(files, directory)
    assert cache_files(directory) == []  # no array, no index, no partial file
    monkeypatch.setattr(images, "decode_image_file", real)
    array = build(files, directory)
    assert np.abs(array[11].astype(int) - image_color(11)).max() <= 16


def test_killed_mid_build_is_rebuilt_and_its_partial_file_removed(files, tmp_path, monkeypatch):
    directory = tmp_path / "c"
    real = images.decode_image_file
    monkeypatch.setattr(cache, "CHUNK_SIZE", 1)

    def slow(path, image_size):
        # No real decoding in the forked child: tiny tensors keep torch off its thread pool there.
        time.sleep(0.2)
        return torch.full((image_size, image_size, 3), 7, dtype=torch.uint8)

    monkeypatch.setattr(images, "decode_image_file", slow)
    pid = os.fork()
    if pid == 0:  # child: build until killed
        try:
            build(files, directory)
        finally:
            os._exit(0)
    deadline = time.time() + 20
    while not any("partial" in n for n in cache_files(directory)) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # let it write a few images
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    left = cache_files(directory)
    # What kill -9 leaves: a partial array, and the lock file whose OS lock died with the process.
    assert len(left) == 2 and left[0].endswith(".lock") and "partial" in left[1], left

    monkeypatch.setattr(images, "decode_image_file", real)
    array = build(files, directory)
    assert np.abs(array[11].astype(int) - image_color(11)).max() <= 16
    assert [name.rsplit(".", 1)[1] for name in cache_files(directory)] == ["json", "npy"]  # no partial, no lock


def test_array_without_index_or_with_a_bad_index_is_not_trusted(files, tmp_path, decode_calls):
    directory = tmp_path / "c"
    build(files, directory)
    (index,) = directory.glob("*.json")
    (array_path,) = directory.glob("*.npy")
    index.unlink()  # as if killed between publishing the array and the index
    build(files, directory)
    assert len(decode_calls) == 24
    index.write_text("{not json")
    build(files, directory)
    assert len(decode_calls) == 36
    data = json.loads(index.read_text())
    index.write_text(json.dumps(dict(data, key="somethingelse")))
    build(files, directory)
    assert len(decode_calls) == 48
    array_path.write_bytes(array_path.read_bytes()[:200])  # truncated array, valid index
    build(files, directory)
    assert len(decode_calls) == 60


def test_unreadable_image_names_the_file_and_leaves_no_cache(files, tmp_path):
    files[5].write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UserError, match=r"(?s)cannot read image .*05\.jpg: .*marker.*re-download"):
        build(files, tmp_path / "c")
    assert cache_files(tmp_path / "c") == []
    with pytest.raises(UserError, match=r"cannot read image .*05\.jpg"):
        build(files, tmp_path / "c", workers=2)


def test_missing_image_and_unusable_cache_dir(files, tmp_path):
    with pytest.raises(UserError, match="1 of 13 listed images do not exist"):
        build(files + [tmp_path / "img" / "absent.jpg"], tmp_path / "c")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot create the cache directory"):
        build(files, tmp_path / "a-file" / "c")


def test_png_and_pillow_only_formats(tmp_path):
    from PIL import Image

    png = tmp_path / "a.png"
    bmp = tmp_path / "b.bmp"
    Image.new("RGB", (20, 10), (10, 200, 30)).save(png)
    Image.new("RGB", (10, 20), (200, 10, 30)).save(bmp)  # torchvision cannot decode BMP
    array = build([png, bmp], tmp_path / "c")
    assert array.shape == (2, SIZE, SIZE, 3)
    assert tuple(array[0, 4, 4]) == (10, 200, 30) and tuple(array[1, 4, 4]) == (200, 10, 30)


def test_decode_crops_the_center_square_of_wide_and_tall_images(tmp_path):
    from PIL import Image

    for name, size, box in (("tall.png", (10, 30), (0, 10, 10, 20)), ("wide.png", (30, 10), (10, 0, 20, 10))):
        picture = Image.new("RGB", size, (0, 0, 0))
        picture.paste((255, 255, 255), box)  # only the central square is white
        picture.save(tmp_path / name)
        decoded = images.decode_image_file(tmp_path / name, 5)
        assert decoded.shape == (5, 5, 3) and decoded.dtype == torch.uint8
        assert decoded.min() == 255, name


# A cache builder as a process in another pid namespace (a container, or another machine over
# NFS) looks from here: its pid, in its partial file's name and its lock file, is not alive here.
FOREIGN_PID = 4_000_000
BUILDER_ELSEWHERE = f"""
import os, sys, time
from pathlib import Path
from debias.data import cache, images

os.getpid = lambda: {FOREIGN_PID}
gate = Path(sys.argv[1])
real = images.decode_image_file

def held(path, size):
    deadline = time.monotonic() + 300
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(path, size)

images.decode_image_file = held
cache.cached_images(sys.argv[3:], {SIZE}, ("test",), cache_dir=sys.argv[2], workers=0, progress=False)
print("built", flush=True)
"""


def test_a_second_builder_waits_for_a_live_one_elsewhere_and_reuses_its_cache(files, tmp_path, monkeypatch):
    with pytest.raises(ProcessLookupError):
        os.kill(FOREIGN_PID, 0)
    directory, gate = tmp_path / "c", tmp_path / "gate"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER_ELSEWHERE, str(gate), str(directory), *map(str, files)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Generous: on a loaded machine starting Python and torch alone can take a minute.
        deadline = time.monotonic() + 300
        while not any("partial" in n for n in cache_files(directory)):
            if builder.poll() is not None or time.monotonic() > deadline:
                builder.kill()  # a builder held at its gate would otherwise wait 300 s per image
                pytest.fail(f"the first builder never started its partial file: {builder.communicate()}")
            time.sleep(0.05)
        (partial,) = [n for n in cache_files(directory) if "partial" in n]
        assert f"partial-{FOREIGN_PID}-" in partial

        waiting = threading.Event()
        holders = []

        def note_waiting(directory, stem, progress):
            return lambda holder: (holders.append(holder["pid"]), waiting.set())

        monkeypatch.setattr(cache, "_say_waiting", note_waiting)
        forbid_decoding(monkeypatch)  # the second process must reuse the first one's cache
        result = {}
        second = threading.Thread(target=lambda: result.update(array=np.array(build(files, directory))))
        second.start()
        assert waiting.wait(120), "the second builder did not wait"
        assert holders == [FOREIGN_PID]
        assert partial in cache_files(directory), "the live builder's partial file was deleted"
    finally:
        gate.touch()
        out, err = builder.communicate(timeout=300)
    second.join(120)
    assert builder.returncode == 0 and out.strip() == "built", err
    for i in range(12):
        assert np.abs(result["array"][i].astype(int) - image_color(i)).max() <= 16
    assert [name.rsplit(".", 1)[1] for name in cache_files(directory)] == ["json", "npy"]


def test_a_full_cache_disk_is_reported_in_units_that_read(files, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda _: usage._replace(free=3 * 2**20))
    with pytest.raises(UserError) as caught:
        build(files, tmp_path / "c")
    assert str(caught.value).startswith(
        f"the image cache needs 2.2 KiB (and 64.0 MiB to spare) but {tmp_path / 'c'} has 3.0 MiB free."
    )
    assert cache.format_size(5 * 2**30) == "5.00 GiB" and cache.format_size(368_768) == "360 KiB"
