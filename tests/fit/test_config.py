"""FitConfig as the one source of truth: every setting reaches the command line, validation and --resume."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from debias.cli import main
from debias.errors import UserError
from debias.fit import FitConfig, validate
from debias.fit.resume import resumed_config, settings_conflicts
from debias.settings import base_type, declared, replace_at, value_at
from debias.weighting import WeightingSettings

SETTINGS = [item for item in declared(FitConfig)]


def other_value(item):
    """A valid value of the setting that differs from its default."""
    default = value_at(FitConfig(), item.path)
    kind, optional, many = base_type(item.hint)
    allowed = item.setting.allowed()
    if kind is str and allowed is None:
        return ("Male",) if many else "other"
    if many:
        return tuple(a for a in allowed if a not in default)[:1] or default[:1]
    if allowed is not None:
        return next(a for a in allowed if a != default)
    if kind is bool:
        return not default
    if default is None:
        return 2.0 if kind is float else 2
    if item.setting.multiple_of:
        return default + item.setting.multiple_of
    return default + 1 if kind is int else default * 2 + 1


def test_every_setting_has_a_flag_and_help_and_reaches_fit_help():
    text = CliRunner().invoke(main, ["fit", "--help"], terminal_width=200).output
    for item in SETTINGS:
        assert item.setting.flag and len(item.setting.help) > 10, item.name
        assert item.setting.flag.split("/")[0] in text, item.name


@pytest.mark.parametrize("item", [i for i in SETTINGS if not i.setting.runtime], ids=lambda i: i.name)
def test_resume_refuses_every_setting_that_decides_what_is_trained(item):
    saved = FitConfig()
    given = replace_at(saved, {item.path: other_value(item)})
    conflicts = settings_conflicts(saved, given, {item.name})
    assert len(conflicts) == 1 and conflicts[0].startswith(item.setting.flag), conflicts
    assert settings_conflicts(saved, given, set()) == []  # only what the user gave explicitly is compared


@pytest.mark.parametrize("item", [i for i in SETTINGS if i.setting.runtime], ids=lambda i: i.name)
def test_resume_takes_runtime_settings_from_the_command_line(item):
    saved = FitConfig()
    value = other_value(item)
    given = replace_at(saved, {item.path: value})
    assert settings_conflicts(saved, given, {item.name}) == []
    assert value_at(resumed_config(saved, given, {item.name}), item.path) == value
    assert value_at(resumed_config(saved, given, set()), item.path) == value_at(saved, item.path)


def test_data_options_on_resume():
    saved = FitConfig(data="celeba", data_options={"root": ".", "groups": "Male", "cache_dir": "/a"})
    given = FitConfig(
        data="celeba", data_options={"root": "./", "groups": ["Male"], "cache_dir": "/b", "target": "Smiling"}
    )
    conflicts = settings_conflicts(saved, given, {"data_options"})
    assert conflicts == ["--target Smiling (the run has unset)"]  # same root and groups, spelled differently
    resumed = resumed_config(saved, given, {"data_options"})
    assert resumed.data_options == {"root": ".", "groups": "Male", "cache_dir": "/b"}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "--epochs must be >= 1, got 0"),
        ({"epochs": 2.5}, "--epochs must be a whole number, got 2.5"),
        ({"learning_rate": 0.0}, "--lr must be > 0, got 0"),
        ({"image_size": 40}, "--image-size must be a multiple of 16"),
        ({"models": ("uniform", "bogus")}, "--models must be one of uniform, dbvae, sampler, oracle, got 'bogus'"),
        ({"vae_on": "some"}, "--vae-on must be one of all, positives, got 'some'"),
        ({"data_options": {"limit": 0}}, "--limit must be >= 1, got 0"),
        ({"weighting": WeightingSettings(bins=1)}, "--bins must be >= 2"),
        (
            {"auto_epochs": 3, "weighting": WeightingSettings(strategy="errors")},
            "--auto-epochs only applies to --weighting auto",
        ),
        (
            {"weighting": WeightingSettings(strategy="errors", alpha=0.01)},
            "the weighting here is errors, which does not read --alpha (read by histogram): pick a strategy "
            "that reads it with --weighting, or drop --alpha",
        ),
        (
            {"weighting": WeightingSettings(strategy="joint", errors_upweight=5)},
            "does not read --errors-upweight (read by errors, errors+joint, errors+latent)",
        ),
        (
            {"weighting": WeightingSettings(strategy="classes", keep_class_shares=False)},
            "the weighting here is classes, which does not read --free-class-shares (read by histogram,",
        ),
    ],
)
def test_validate_names_the_flag_and_the_value(changes, message):
    with pytest.raises(UserError, match=None) as caught:
        validate(FitConfig(**changes))
    assert message in str(caught.value)


def test_each_short_run_of_auto_is_at_most_the_fit():
    assert FitConfig(epochs=1, auto_epochs=2).short_run_epochs == 1
    assert FitConfig(epochs=5, auto_epochs=2).short_run_epochs == 2
    validate(FitConfig(epochs=1, auto_epochs=3))  # the default, auto, with a one-epoch fit is no error


def test_settings_read_by_some_candidate_of_auto_are_accepted():
    validate(
        FitConfig(
            weighting=WeightingSettings(strategy="auto", alpha=0.01, knn_k=5), auto_strategies=("histogram", "joint")
        )
    )
    validate(FitConfig(weighting=WeightingSettings(strategy="histogram", alpha=0.01, cap=4)))
    with pytest.raises(UserError, match="does not read --alpha"):
        validate(FitConfig(weighting=WeightingSettings(strategy="auto", alpha=0.01), auto_strategies=("errors",)))


def test_validate_lists_every_problem_in_one_message():
    with pytest.raises(UserError) as caught:
        validate(FitConfig(epochs=0, batch_size=1, weighting=WeightingSettings(alpha=-1.0)))
    text = str(caught.value)
    assert "--epochs" in text and "--batch-size" in text and "--alpha" in text


def test_to_dict_round_trips_and_dbvae_is_always_a_model():
    config = FitConfig(
        models=("oracle", "uniform"), auto_strategies=("joint",), weighting=WeightingSettings(strategy="auto")
    )
    assert config.models == ("uniform", "dbvae", "oracle")
    assert FitConfig.from_dict(config.to_dict()) == config
    legacy = dict(config.to_dict(), data_options={"limit": 5, "progress": False})
    assert FitConfig.from_dict(legacy).data_options == {"limit": 5}
    # a run recorded before keep_class_shares existed is resumed and recomputed as it ran
    weighting = {k: v for k, v in config.to_dict()["weighting"].items() if k != "keep_class_shares"}
    before = dict(config.to_dict(), weighting=weighting)
    assert FitConfig.from_dict(before).weighting.keep_class_shares is False
    joint_before = dict(before, weighting=dict(weighting, strategy="joint"))
    assert FitConfig.from_dict(joint_before).weighting.keep_class_shares is True


def test_runtime_settings_are_recorded_apart_from_the_settings():
    config = FitConfig(
        device="cpu",
        eval_batch_size=64,
        tensorboard="tb",
        data_options={"limit": 5, "cache_dir": "/fast/cache", "workers": 2},
    )
    recorded = config.to_dict()
    runtime = [item for item in declared(FitConfig) if item.setting.runtime]
    assert {i.name for i in runtime} == {"device", "amp", "eval_batch_size", "compile", "tensorboard"}
    assert not {i.name for i in runtime} & set(recorded)
    assert recorded["data_options"] == {"limit": 5}
    assert config.runtime_dict() == {
        "device": "cpu",
        "amp": True,
        "eval_batch_size": 64,
        "compile": False,
        "tensorboard": "tb",
        "data_options": {"cache_dir": "/fast/cache", "workers": 2},
    }
    # read back, the runtime settings are the defaults: a resumed fit takes them from its command line
    assert FitConfig.from_dict(recorded) == FitConfig(data_options={"limit": 5})


def test_tensorboard_without_the_package_is_one_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(UserError, match=r"--tensorboard needs the tensorboard package: pip install tensorboard"):
        validate(FitConfig(tensorboard="tb"))
