"""CelebA from a fake folder in the official formats: parsing, splits, target/groups, ids, images, errors."""

import numpy as np
import pytest
from fakes import BAND_COLOR, CELEBA_ATTRIBUTES, fake_celeba_table, image_color, make_fake_celeba, write_jpeg

from debias.data import load_dataset
from debias.data.celeba import load_celeba, read_attributes, read_partition
from debias.errors import UserError

# torchvision 0.29 deprecates its image I/O on every call; pytest would show each one.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def load(root, **options):
    return load_celeba(root, workers=0, **options)


def test_attribute_file_header_lines_and_minus_one_one_encoding(fake_celeba):
    files, attributes, _ = fake_celeba_table(30)
    table = read_attributes(fake_celeba / "list_attr_celeba.txt")
    assert list(table.columns) == CELEBA_ATTRIBUTES  # line 2, with its trailing space and CRLF
    assert list(table.index) == files  # line 1 (the count) is not a row
    np.testing.assert_array_equal(table.to_numpy(), (attributes == 1).astype(np.int8))


def test_partition_file(fake_celeba):
    files, _, partition = fake_celeba_table(30)
    split = read_partition(fake_celeba / "list_eval_partition.txt")
    assert list(split.index) == files
    assert list(split) == [["train", "valid", "test"][c] for c in partition]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_official_splits_labels_and_sample_ids(tmp_path, newline):
    root = make_fake_celeba(tmp_path / "c", n=30, newline=newline)
    files, attributes, partition = fake_celeba_table(30)
    blond = attributes[:, CELEBA_ATTRIBUTES.index("Blond_Hair")]
    male = attributes[:, CELEBA_ATTRIBUTES.index("Male")]
    ds = load(root)
    assert ds.name == "celeba" and ds.target == "Blond_Hair" and ds.vae_on_all is True
    assert ds.group_columns == ["Male"]
    for name, code in SPLIT_CODES.items():
        split = ds.split(name)
        rows = np.flatnonzero(partition == code)
        assert list(split.sample_ids) == [files[i] for i in rows]
        np.testing.assert_array_equal(split.labels, (blond[rows] == 1).astype(int))
        np.testing.assert_array_equal(split.attributes["Male"], (male[rows] == 1).astype(int))
        assert set(split.attributes["Male"]) == {0, 1} and set(split.labels) == {0, 1}
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (18, 6, 6)


def test_images_are_center_cropped_resized_and_in_sample_order(fake_celeba):
    ds = load(fake_celeba, image_size=32)
    files, _, partition = fake_celeba_table(30)
    for name, code in SPLIT_CODES.items():
        split = ds.split(name)
        assert split.images.shape == (len(split), 32, 32, 3) and split.images.dtype == np.uint8
        for row, i in enumerate(np.flatnonzero(partition == code)):
            image = split.images[row].astype(int)
            # Flat colour of file i everywhere (colours differ by 50 per channel; JPEG adds up to ~10):
            # the 20-pixel bands were cropped away, not squeezed in.
            assert np.abs(image - np.array(image_color(i))).max() <= 16, files[i]
            assert np.abs(image - np.array(BAND_COLOR)).sum(axis=-1).min() > 100


def test_target_and_groups_selection(fake_celeba):
    _, attributes, partition = fake_celeba_table(30)
    train_rows = partition == 0
    for groups in ("Male,Young", ["Male", "Young"], ("Male", " Young ")):
        ds = load(fake_celeba, target="Smiling", groups=groups)
        assert ds.target == "Smiling" and ds.group_columns == ["Male", "Young"]
        expected = (attributes[train_rows, CELEBA_ATTRIBUTES.index("Smiling")] == 1).astype(int)
        np.testing.assert_array_equal(ds.train.labels, expected)
        young = (attributes[train_rows, CELEBA_ATTRIBUTES.index("Young")] == 1).astype(int)
        np.testing.assert_array_equal(ds.train.attributes["Young"], young)
        assert set(CELEBA_ATTRIBUTES) <= set(ds.train.attributes.columns)


def test_groups_stay_out_of_labels(fake_celeba):
    # Male and Blond_Hair differ on some training rows; the label must follow the target only.
    ds = load(fake_celeba, target="Blond_Hair", groups="Male")
    assert (ds.train.labels != ds.train.attributes["Male"].to_numpy()).any()
    np.testing.assert_array_equal(ds.train.labels, ds.train.attributes["Blond_Hair"])


def test_root_may_be_the_parent_of_a_celeba_folder(tmp_path):
    make_fake_celeba(tmp_path / "data", n=30, subdir="celeba")
    ds = load(tmp_path / "data")
    assert len(ds.train) == 18
    assert ds.info["root"] == str(tmp_path / "data" / "celeba")


def test_limit_keeps_the_first_n_of_each_split(fake_celeba):
    files, _, partition = fake_celeba_table(30)
    ds = load(fake_celeba, limit=4)
    for name, code in SPLIT_CODES.items():
        assert list(ds.split(name).sample_ids) == [files[i] for i in np.flatnonzero(partition == code)[:4]]
    with pytest.raises(UserError, match="--limit"):
        load(fake_celeba, limit=0)


def test_registry_name(fake_celeba):
    ds = load_dataset("celeba", root=str(fake_celeba), image_size=16, workers=0, progress=False)
    assert ds.name == "celeba" and ds.train.image_size == 16


# --- errors: each a UserError saying what to do ------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(UserError, match="--root"):
        load(None)


def test_root_that_is_not_celeba(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="does not look like CelebA.*img_align_celeba"):
        load(tmp_path / "empty")


@pytest.mark.parametrize("name", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_missing_text_file(fake_celeba, name):
    (fake_celeba / name).unlink()
    with pytest.raises(UserError, match=f"missing .*{name}.*data/README.md"):
        load(fake_celeba)


def test_listed_image_absent(fake_celeba):
    (fake_celeba / "img_align_celeba" / "000007.jpg").unlink()
    with pytest.raises(UserError, match=r"1 of 30 listed images do not exist:\n.*000007.jpg"):
        load(fake_celeba)


@pytest.mark.parametrize("content", [b"", b"this is not a jpeg", "half"])
def test_listed_image_unreadable(fake_celeba, content):
    path = fake_celeba / "img_align_celeba" / "000005.jpg"
    if content == "half":
        content = path.read_bytes()[:400]
    path.write_bytes(content)
    with pytest.raises(UserError, match="cannot read image .*000005.jpg"):
        load(fake_celeba)


def test_unknown_target_lists_valid_names_and_suggests_closest(fake_celeba):
    with pytest.raises(UserError) as error:
        load(fake_celeba, target="Blonde_Hair")
    message = str(error.value)
    assert "'Blonde_Hair'" in message and "Did you mean 'Blond_Hair'?" in message
    assert "5_o_Clock_Shadow" in message and "Young" in message


def test_unknown_group(fake_celeba):
    with pytest.raises(UserError, match="--groups attribute 'male'.*Did you mean 'Male'"):
        load(fake_celeba, groups="male")
    with pytest.raises(UserError, match="unknown --groups attribute 'Gender'"):
        load(fake_celeba, groups=["Young", "Gender"])


def test_empty_split(fake_celeba):
    path = fake_celeba / "list_eval_partition.txt"
    path.write_bytes(path.read_bytes().replace(b" 2\r\n", b" 1\r\n"))
    with pytest.raises(UserError, match="test split of celeba has no images.*list_eval_partition.txt"):
        load(fake_celeba)


def test_truncated_attribute_file(fake_celeba):
    path = fake_celeba / "list_attr_celeba.txt"
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[:-4]) + b"\r\n")
    with pytest.raises(UserError, match="announces 30 images.*lists 27"):
        load(fake_celeba)


def test_attribute_values_outside_minus_one_one(fake_celeba):
    path = fake_celeba / "list_attr_celeba.txt"
    text = path.read_bytes().replace(b"000003.jpg -1", b"000003.jpg  0").replace(b"000003.jpg  1", b"000003.jpg  0")
    path.write_bytes(text)
    with pytest.raises(UserError, match="000003.jpg has values other than -1 and 1"):
        load(fake_celeba)


def test_attribute_and_partition_files_disagree(fake_celeba):
    write_jpeg(fake_celeba / "img_align_celeba" / "000099.jpg", (1, 2, 3))
    with open(fake_celeba / "list_eval_partition.txt", "ab") as handle:
        handle.write(b"000099.jpg 0\r\n")
    with pytest.raises(UserError, match="listed in list_eval_partition.txt but not in list_attr_celeba.txt"):
        load(fake_celeba)
