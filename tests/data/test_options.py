"""Loader options are checked before loading: one message naming the option as typed, why, the closest
option and what the dataset takes; through `load_dataset` and through `debias fit`."""

import pytest
from click.testing import CliRunner

from debias.cli import main
from debias.data import _REGISTRY, OPTION_FLAGS, available, load_dataset
from debias.data.manifest import load_image_folder, load_manifest
from debias.data.options import check_options, loader_options, option_flag
from debias.errors import UserError

SYNTH_TAKES = (
    "It takes --image-size, --limit, --groups and --data-option NAME=VALUE for NAME in: n_train, n_valid, n_test, "
    "rare_rate, face_fraction, seed, difficulty, spurious, spurious_rate, label_noise, hard_rate."
)
MANIFEST_TAKES = "It takes --groups, --image-size, --limit, --cache-dir, --workers and --data-option NAME=VALUE for NAME in: seed, vae_on_all."
CELEBA_TAKES = "It takes --root, --target, --groups, --image-size, --limit, --cache-dir, --workers."
TINY = "--limit 48 --epochs 1 --batch-size 16 --latent-dim 4 --image-size 16 --models dbvae --device cpu --quiet --vae-warmup-steps 0".split()


def refusal(name, **options) -> str:
    with pytest.raises(UserError) as caught:
        load_dataset(name, **options)
    return str(caught.value)


def test_the_flag_table_names_each_option_with_a_flag_of_its_own():
    assert OPTION_FLAGS == {
        "root": "--root",
        "target": "--target",
        "groups": "--groups",
        "limit": "--limit",
        "cache_dir": "--cache-dir",
        "workers": "--workers",
        "image_size": "--image-size",
    }
    assert option_flag("cache_dir", "/tmp/c") == "--cache-dir /tmp/c"
    assert option_flag("groups", ("Male", "Young")) == "--groups Male,Young"
    assert option_flag("spurious", "hat") == "--data-option spurious=hat"
    assert option_flag("spurious") == "--data-option spurious=VALUE"


def test_a_misspelt_synthfaces_option_suggests_the_right_one():
    assert refusal("synthfaces", spurios="hat") == (
        "--data-option spurios=hat does not apply to the synthfaces dataset. Did you mean --data-option spurious=hat? "
        + SYNTH_TAKES
    )
    # The suggestion is named by flag where the option has one.
    assert "Did you mean --limit 5?" in refusal("synthfaces", limits=5)


@pytest.mark.parametrize(
    "option, value, why",
    [
        (
            "root",
            "/data",
            "--root /data does not apply to the synthfaces dataset: it is drawn in memory from a seed, not read from files.",
        ),
        (
            "target",
            "Smiling",
            "--target Smiling does not apply to the synthfaces dataset: its target is fixed: face (faces vs non-faces), "
            "or glasses with --data-option spurious=hat|dark.",
        ),
        (
            "cache_dir",
            "/tmp/c",
            "--cache-dir /tmp/c does not apply to the synthfaces dataset: it is drawn in memory from a seed: "
            "there are no image files to decode or cache.",
        ),
        (
            "workers",
            4,
            "--workers 4 does not apply to the synthfaces dataset: it is drawn in memory from a seed: there are no "
            "image files to decode or cache.",
        ),
    ],
    ids=["root", "target", "cache_dir", "workers"],
)
def test_options_of_file_datasets_are_refused_by_synthfaces_with_the_reason(option, value, why):
    assert refusal("synthfaces", **{option: value}) == f"{why} {SYNTH_TAKES}"


def test_several_wrong_options_are_one_message_naming_them_all():
    message = refusal("synthfaces", spurios="hat", root="/x", workers=2)
    assert message.startswith("--data-option spurios=hat does not apply to the synthfaces dataset.")
    assert "Nor do --root, --workers." in message and message.count("does not apply") == 1


@pytest.mark.parametrize(
    "groups, spurious, fixed",
    [
        (
            "Male",
            None,
            "here subgroup (common, dark, glasses, hat for faces, nonface for the rest, crossed with the face label). "
            "Leave --groups out; --data-option spurious=hat or spurious=dark makes a trait the group.",
        ),
        ("dark", "hat", "here hat (the spurious trait, crossed with the glasses label). Leave --groups out."),
    ],
    ids=["default-mode", "spurious-mode"],
)
def test_synthfaces_refuses_groups_other_than_the_ones_its_mode_fixes(groups, spurious, fixed):
    message = refusal("synthfaces", n_train=20, n_valid=20, n_test=20, image_size=16, groups=groups, spurious=spurious)
    assert (
        message
        == f"--groups {groups} does not apply to the synthfaces dataset: its groups are fixed by its mode, {fixed}"
    )


def test_manifest_refuses_target_and_root(manifest):
    # The check comes before the file is read: a manifest that does not exist gets the same answer.
    assert refusal("faces.csv", target="Smiling") == (
        "--target Smiling does not apply to a CSV manifest (faces.csv): it takes its label from the `label` column "
        "(0/1, or two values mapped in sorted order to 0/1). " + MANIFEST_TAKES
    )
    assert refusal(str(manifest), root="/data") == (
        f"--root /data does not apply to a CSV manifest ({manifest}): image paths are relative to the CSV's own folder "
        "(or absolute). " + MANIFEST_TAKES
    )
    assert "Did you mean --groups tone?" in refusal(str(manifest), grups="tone")
    assert "the manifest's path is the --data value itself" in refusal(str(manifest), path="other.csv")


def test_image_folder_refuses_groups_target_and_root(image_folder):
    groups = (
        "--groups tone does not apply to a class-folder dataset ({}): a class folder has no group attributes, only "
        "the class, which is the label. To evaluate by groups, list the images in a CSV manifest with one column "
        "per group attribute and pass it as --data. See data/README.md for the manifest format."
    )
    assert refusal(str(image_folder), groups="tone") == groups.format(image_folder)
    with pytest.raises(UserError) as caught:
        load_image_folder(image_folder, groups=["tone"], workers=0)
    assert str(caught.value) == groups.format(image_folder)
    assert "its label is the class subfolder (the two subfolders, sorted by name, give 0 and 1)" in refusal(
        str(image_folder), target="face"
    )
    assert "the folder is the --data value itself" in refusal(str(image_folder), root="/data")
    # No groups, or empty ones, still load.
    assert load_dataset(str(image_folder), groups="", image_size=8, workers=0).group_columns == []


def test_celeba_refuses_a_seed_and_suggests_for_a_misspelt_option(fake_celeba):
    assert refusal("celeba", root=str(fake_celeba), seed=3) == (
        "--data-option seed=3 does not apply to the celeba dataset: its splits are the official ones from "
        "list_eval_partition.txt (--seed seeds the training). " + CELEBA_TAKES
    )
    assert "Did you mean --target Smiling?" in refusal("celeba", root=str(fake_celeba), taget="Smiling")


def test_every_loader_names_its_options_and_takes_progress():
    loaders = [entry.load for entry in (_REGISTRY[name] for name in available())] + [load_manifest, load_image_folder]
    assert len(loaders) == 4
    for loader in loaders:
        options = loader_options(loader, supplied=("path",))  # raises TypeError on **kwargs
        assert "progress" in options and "image_size" in options and "groups" in options, loader.__qualname__

    def swallowing(limit=None, **ignored):
        return None

    with pytest.raises(TypeError, match="takes \\*\\*kwargs"):
        check_options({"limit": 1}, swallowing, "a test dataset")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--data-option", "spurios=hat"],
            "--data-option spurios=hat does not apply to the synthfaces dataset. Did you mean --data-option spurious=hat?",
        ),
        (
            ["--cache-dir", "{tmp}/cache"],
            "--cache-dir {tmp}/cache does not apply to the synthfaces dataset: it is drawn in memory",
        ),
        (
            ["--groups", "Male"],
            "--groups Male does not apply to the synthfaces dataset: its groups are fixed by its mode",
        ),
    ],
    ids=["misspelt", "cache-dir", "groups"],
)
def test_fit_on_synthfaces_refuses_with_one_message(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["fit", *TINY, *args, "--out", str(tmp_path / "run")])
    assert result.exit_code not in (0, None)
    assert message.replace("{tmp}", str(tmp_path)) in result.output
    assert "Traceback" not in result.output and result.output.count("Error:") == 1
    assert not (tmp_path / "run").exists()


def test_fit_on_a_manifest_or_folder_refuses_options_that_do_not_apply(tmp_path, manifest, image_folder):
    result = CliRunner().invoke(
        main, ["fit", *TINY, "--data", str(manifest), "--target", "Smiling", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code not in (0, None) and "Traceback" not in result.output
    assert (
        f"--target Smiling does not apply to a CSV manifest ({manifest}): it takes its label from the `label` column"
        in result.output
    )
    result = CliRunner().invoke(
        main, ["fit", *TINY, "--data", str(image_folder), "--groups", "tone", "--out", str(tmp_path / "b")]
    )
    assert result.exit_code not in (0, None) and "Traceback" not in result.output
    assert "--groups tone does not apply to a class-folder dataset" in result.output
    assert "list the images in a CSV manifest with one column per group attribute" in result.output
