"""`debias fit --config FILE`: settings from TOML, JSON or a previous run's config.json; the command line overrides."""

import json

import pytest
from click.testing import CliRunner

from debias.cli import main
from debias.errors import UserError
from debias.fit import FitConfig
from debias.fit.settings_file import config_from_file, nest_settings
from debias.weighting import WeightingSettings

TINY = [
    "--limit",
    "96",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--latent-dim",
    "4",
    "--image-size",
    "32",
    "--vae-warmup-steps",
    "0",
]


def fit(*args):
    return CliRunner().invoke(main, ["fit", *map(str, args)])


def test_a_runs_config_json_repeats_its_settings_with_the_new_seed(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    histogram = ["--weighting", "histogram", "--alpha", "0.05"]
    result = fit(*TINY, *histogram, "--models", "uniform", "--device", "cpu", "--quiet", "--out", first)
    assert result.exit_code == 0, result.output
    result = fit("--config", first / "config.json", "--seed", "1", "--quiet", "--out", second)
    assert result.exit_code == 0, result.output
    before = json.loads((first / "config.json").read_text())["settings"]
    after = json.loads((second / "config.json").read_text())["settings"]
    assert before["seed"] == 0 and after["seed"] == 1
    assert after == dict(before, seed=1)
    assert after["weighting"]["alpha"] == 0.05 and after["data_options"] == {"limit": 96}
    assert after["models"] == ["uniform", "dbvae"] and after["epochs"] == 1


def test_toml_with_flag_names_and_nested_tables(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text(
        'data = "celeba"\nroot = "~/celeba"\ngroups = "Male"\nepochs = 6\nlr = 0.002\n'
        'weighting = "errors+joint"\nerrors-upweight = 10\n\n[data_options]\nsplit_seed = 3\n'
    )
    config = config_from_file(path)
    assert config.data == "celeba" and config.epochs == 6 and config.learning_rate == 0.002
    assert config.weighting == WeightingSettings(strategy="errors+joint", errors_upweight=10)
    assert config.data_options == {"root": "~/celeba", "groups": "Male", "split_seed": 3}


def test_a_json_file_with_a_weighting_table(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(
        json.dumps({"epochs": 2, "weighting": {"strategy": "joint", "joint_dims": 8}, "models": ["uniform"]})
    )
    config = config_from_file(path)
    assert config.epochs == 2 and config.weighting.joint_dims == 8 and config.models == ("uniform", "dbvae")


def test_flat_and_nested_names_meet():
    assert nest_settings({"epochs": 2, "weighting": "joint", "joint-dims": 8, "root": "r"}, "here") == {
        "epochs": 2,
        "weighting": {"strategy": "joint", "joint_dims": 8},
        "data_options": {"root": "r"},
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("epoch = 3\n", "'epoch' is not a setting (did you mean 'epochs'?)"),
        ("[weighting]\nalpah = 0.1\n", "'weighting.alpah' is not a setting (did you mean 'alpha'?)"),
        ("epochs = [\n", "is not valid TOML"),
    ],
)
def test_bad_files_are_one_message(tmp_path, text, fragment):
    path = tmp_path / "fit.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=None) as caught:
        config_from_file(path)
    assert fragment in str(caught.value)


def test_the_command_line_overrides_the_file_and_defaults_do_not(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text("epochs = 0\nbatch_size = 1\n")
    # both values are invalid; the command line fixes one of them, the file's other one stands
    result = fit("--config", path, "--epochs", "2", "--out", tmp_path / "r")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--batch-size must be >= 2" in result.output and "--epochs" not in result.output
    assert FitConfig().batch_size != 1


def test_config_cannot_change_a_resumed_fit(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text("epochs = 2\n")
    result = fit("--config", path, "--resume", tmp_path / "run")
    assert result.exit_code != 0 and "drop --config" in result.output


def test_missing_file(tmp_path):
    result = fit("--config", tmp_path / "nope.toml")
    assert result.exit_code != 0 and "nope.toml does not exist" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("models = 3\n", ["--models must be a list of names, got 3"]),
        ('models = ["uniform", 3]\n', ["--models must be text, got 3"]),
        ("epochs = 2.5\nlatent_dim = true\n", ["--epochs must be a whole number, got 2.5", "--latent-dim must be"]),
        ('[weighting]\nbins = "ten"\n', ["--bins must be a whole number, got 'ten'"]),
        ("augment = 1\n", ["--augment/--no-augment must be true or false, got 1"]),
    ],
)
def test_every_settings_type_is_checked_in_one_message(tmp_path, text, fragments):
    path = tmp_path / "fit.toml"
    path.write_text(text)
    result = fit("--config", path, "--out", tmp_path / "r")
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("Error:") == 1
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_the_python_api_checks_types_alike(tmp_path):
    import debias

    for settings, fragment in (
        ({"models": 3}, "--models must be a list of names, got 3"),
        ({"epochs": "3"}, "--epochs must be a whole number, got '3'"),
        ({"weighting": {"alpha": "x"}}, "--alpha must be a number, got 'x'"),
    ):
        with pytest.raises(debias.UserError, match=None) as caught:
            debias.run(out=tmp_path / "r", progress=False, **settings)
        assert fragment in str(caught.value)
    with pytest.raises(debias.UserError, match="weighting must be a WeightingSettings"):
        debias.run(debias.FitConfig(weighting="joint"), out=tmp_path / "r", progress=False)
    with pytest.raises(debias.UserError, match="config must be a FitConfig"):
        debias.run(3, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
