"""Class folders as real folders are: strays skipped and counted, links that loop walked once, .jfif and .gif read."""

import os

import numpy as np
import pytest
from fakes import image_color, make_image_folder, write_jpeg
from PIL import Image

from debias.data.manifest import load_image_folder
from debias.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)


def all_ids(ds):
    return sorted(np.concatenate([ds.split(s).sample_ids for s in ("train", "valid", "test")]).tolist())


def test_strays_are_skipped_and_counted_not_fatal(tmp_path, capsys):
    root = make_image_folder(tmp_path / "folder", per_class=10)
    (root / "face" / "._000.jpg").write_bytes(APPLEDOUBLE)  # copied from a Mac volume
    (root / "face" / "notes.jpg").write_text("not a picture\n")
    (root / "face" / "readme.txt").write_text("about these faces\n")
    (root / "no_face" / "x.png").write_bytes(b"x\n")  # shorter than any image header
    (root / "no_face" / "loop.jpg").symlink_to("loop.jpg")  # a link to itself
    (root / "no_face" / "again").symlink_to("..")  # a folder link back up: would list every image again
    write_jpeg(root / "face" / "camera.jfif", image_color(60), 24, 24)
    Image.new("RGB", (24, 24), (200, 30, 30)).save(root / "no_face" / "still.gif")

    ds = load_image_folder(root, image_size=8, workers=0)

    ids = all_ids(ds)
    assert len(ids) == 22 and len(set(ids)) == 22  # 20 JPEGs + .jfif + .gif, none twice
    assert "face/camera.jfif" in ids and "no_face/still.gif" in ids
    assert not any("again/" in i or "._" in i or "notes" in i or "loop" in i for i in ids)
    skipped = ds.info["skipped_files"]
    assert skipped["count"] == 6
    assert skipped["by_reason"] == {
        "macOS AppleDouble file (._*)": 1,
        "not an image inside": 2,
        "not an image extension": 1,
        "broken or looping symbolic link": 1,
        "linked folder listed already": 1,
    }
    printed = capsys.readouterr().err
    assert "skipped 6 entries under" in printed and "1 macOS AppleDouble file (._*)" in printed
    (gif,) = [
        split.images[row]
        for split in (ds.train, ds.valid, ds.test)
        for row, sample_id in enumerate(split.sample_ids)
        if sample_id == "no_face/still.gif"
    ]
    assert tuple(gif[4, 4]) == (200, 30, 30)


def test_a_damaged_image_in_a_folder_is_an_error_naming_it(tmp_path):
    root = make_image_folder(tmp_path / "folder", per_class=4)
    (root / "face" / "001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated in transfer")  # a JPEG's start, then nothing
    with pytest.raises(UserError, match=r"(?s)cannot read image .*face/001\.jpg: .*truncated.*re-download"):
        load_image_folder(root, image_size=8, workers=0)


def test_a_class_folder_holding_only_strays(tmp_path):
    root = make_image_folder(tmp_path / "folder", per_class=3)
    for name in os.listdir(root / "face"):
        (root / "face" / name).unlink()
    (root / "face" / "._a.jpg").write_bytes(APPLEDOUBLE)
    with pytest.raises(UserError, match=r"class folder .*face holds no images; skipped 1 entries .*AppleDouble"):
        load_image_folder(root, image_size=8, workers=0)
