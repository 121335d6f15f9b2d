"""A CSV manifest (`--data PATH.csv`) and a class-folder tree (`--data DIR`) as Datasets."""

import numpy as np
import pandas as pd
import pytest
from fakes import image_color, make_fake_celeba, make_image_folder, make_manifest, write_csv, write_jpeg

from debias.data import load_dataset
from debias.data.manifest import load_image_folder, load_manifest
from debias.data.tables import seeded_split
from debias.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def rows_of(csv_path):
    return pd.read_csv(csv_path).to_dict("records")


def test_manifest_with_split_column(manifest):
    ds = load_manifest(manifest, groups="tone", image_size=16, workers=0)
    table = pd.read_csv(manifest)
    assert ds.info["label_mapping"] == {"cat": 0, "dog": 1} and ds.target == "dog"
    assert ds.group_columns == ["tone"] and ds.vae_on_all is True
    for name in ("train", "valid", "test"):
        split = ds.split(name)
        expected = table[table["split"] == name]
        assert list(split.sample_ids) == list(expected["path"])  # relative to the CSV's folder
        np.testing.assert_array_equal(split.labels, (expected["label"] == "dog").astype(int))
        assert list(split.attributes["tone"]) == list(expected["tone"])
        assert list(split.attributes["age"]) == list(expected["age"])
        assert split.images.shape == (len(expected), 16, 16, 3)
    first = int(ds.test.sample_ids[0].split("_")[1].split(".")[0])
    assert np.abs(ds.test.images[0].astype(int) - image_color(first)).max() <= 16


def test_integer_labels_are_kept_and_absolute_paths_accepted(tmp_path):
    rows = []
    for i in range(12):
        path = write_jpeg(tmp_path / "elsewhere" / f"{i}.png.jpg", image_color(i), 20, 20)
        rows.append({"path": str(path), "label": i % 2, "split": ["train", "valid", "test"][i % 3]})
    csv_path = write_csv(tmp_path / "lists" / "m.csv", rows)
    ds = load_manifest(csv_path, image_size=8, workers=0)
    assert ds.info["label_mapping"] == {} and ds.target == "label"
    assert list(ds.train.labels) == [0, 1, 0, 1]
    assert ds.train.sample_ids[0] == str(tmp_path / "elsewhere" / "0.png.jpg")


def test_seeded_stratified_split_when_no_split_column(tmp_path):
    csv_path = make_manifest(tmp_path, n=60, with_split=False)
    first = load_manifest(csv_path, image_size=8, seed=1, workers=0)
    again = load_manifest(csv_path, image_size=8, seed=1, workers=0)
    other = load_manifest(csv_path, image_size=8, seed=2, workers=0)
    ids = {s: set(first.split(s).sample_ids) for s in ("train", "valid", "test")}
    assert sum(map(len, ids.values())) == 60 and len(set.union(*ids.values())) == 60  # disjoint, complete
    for s, fraction in zip(("train", "valid", "test"), (0.7, 0.15, 0.15)):
        assert abs(len(ids[s]) - fraction * 60) <= 2  # within one per class of 70/15/15
    for s in ("train", "valid", "test"):
        assert first.split(s).labels.mean() == 0.5  # stratified: 30 cats, 30 dogs
        assert list(again.split(s).sample_ids) == list(first.split(s).sample_ids)
    assert list(other.valid.sample_ids) != list(first.valid.sample_ids)
    assert "seed 1" in first.info["split_source"]


def test_seeded_split_gives_small_classes_a_row_in_every_split():
    split = seeded_split(np.array([0] * 3 + [1] * 20), seed=0)
    assert sorted(split[:3]) == ["test", "train", "valid"]


def test_limit_and_registry_routing(manifest, image_folder):
    ds = load_dataset(str(manifest), image_size=8, limit=3, workers=0, progress=False)
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [3, 3, 3]
    ds = load_dataset(str(image_folder), image_size=8, workers=0)
    assert ds.name == "folder:folder-root"
    with pytest.raises(UserError, match="manifest .*missing.csv does not exist"):
        load_dataset(str(manifest.parent / "missing.csv"))
    with pytest.raises(UserError, match="unknown dataset 'celebA'.*debias datasets"):
        load_dataset("celebA")


@pytest.mark.parametrize("drop", ["path", "label"])
def test_manifest_without_required_column(tmp_path, manifest, drop):
    rows = [{k: v for k, v in row.items() if k != drop} for row in rows_of(manifest)]
    csv_path = write_csv(manifest.parent / "bad.csv", rows)
    with pytest.raises(UserError, match=f"has no '{drop}' column.*its columns"):
        load_manifest(csv_path, workers=0)


def test_label_with_three_classes_or_one(manifest):
    rows = rows_of(manifest)
    for i, row in enumerate(rows):
        row["label"] = ["cat", "dog", "bird"][i % 3]
    with pytest.raises(UserError, match="3 distinct values .*'bird', 'cat', 'dog'.*exactly two"):
        load_manifest(write_csv(manifest.parent / "three.csv", rows), workers=0)
    for row in rows:
        row["label"] = 1
    with pytest.raises(UserError, match="every label is 1"):
        load_manifest(write_csv(manifest.parent / "one.csv", rows), workers=0)


def test_unknown_group_column_suggests_closest(manifest):
    with pytest.raises(UserError, match="unknown --groups column 'tones'.*Did you mean 'tone'.*age"):
        load_manifest(manifest, groups="tones", workers=0)


def test_bad_split_value_and_empty_split(manifest):
    rows = rows_of(manifest)
    rows[0]["split"] = "training"
    with pytest.raises(UserError, match="split 'training' is not one of train, valid, test"):
        load_manifest(write_csv(manifest.parent / "s.csv", rows), workers=0)
    rows = [dict(row, split="train" if row["split"] == "test" else row["split"]) for row in rows_of(manifest)]
    with pytest.raises(UserError, match="test split of manifest:e.csv has no images"):
        load_manifest(write_csv(manifest.parent / "e.csv", rows), workers=0)


def test_manifest_listing_a_missing_image(manifest):
    (manifest.parent / "images" / "img_005.jpg").unlink()
    with pytest.raises(UserError, match="listed images do not exist:\n.*img_005.jpg"):
        load_manifest(manifest, workers=0)


def test_manifest_blank_and_duplicate_paths(manifest):
    rows = rows_of(manifest)
    rows[3]["path"] = ""
    with pytest.raises(UserError, match="empty `path` on line"):
        load_manifest(write_csv(manifest.parent / "blank.csv", rows), workers=0)
    rows = rows_of(manifest)
    rows[3]["path"] = rows[2]["path"]
    with pytest.raises(UserError, match="more than once"):
        load_manifest(write_csv(manifest.parent / "dup.csv", rows), workers=0)


def test_image_folder(image_folder):
    ds = load_image_folder(image_folder, image_size=8, seed=0, workers=0)
    assert ds.info["label_mapping"] == {"face": 0, "no_face": 1}  # sorted folder names, as ImageFolder
    assert ds.target == "no_face" and ds.vae_on_all is True
    ids = np.concatenate([ds.split(s).sample_ids for s in ("train", "valid", "test")])
    labels = np.concatenate([ds.split(s).labels for s in ("train", "valid", "test")])
    assert len(ids) == 40 and len(set(ids)) == 40
    for sample_id, label in zip(ids, labels):
        folder, _ = sample_id.split("/")
        assert label == (folder == "no_face")
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [28, 6, 6]


def test_image_folder_needs_exactly_two_classes(tmp_path):
    root = make_image_folder(tmp_path / "three", classes=("a", "b", "c"), per_class=2)
    with pytest.raises(UserError, match="3 class subfolder.*exactly two"):
        load_image_folder(root, workers=0)
    root = make_image_folder(tmp_path / "one", classes=("a",), per_class=2)
    with pytest.raises(UserError, match="1 class subfolder"):
        load_image_folder(root, workers=0)
    (tmp_path / "bare").mkdir()
    with pytest.raises(UserError, match="no class subfolders"):
        load_image_folder(tmp_path / "bare", workers=0)
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "absent", workers=0)


def test_image_folder_that_is_really_celeba(tmp_path):
    root = make_fake_celeba(tmp_path / "c", n=3)
    with pytest.raises(UserError, match="--data celeba --root"):
        load_dataset(str(root))
