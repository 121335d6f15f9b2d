"""A strategy is one registry entry: registering a toy one puts it everywhere a strategy is named."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from debias import UserError, weights_from_features
from debias.fit.config import FitConfig, validate
from debias.report.strategy import describe
from debias.weighting import STRATEGIES, Caption, WeightingSettings, register_strategy
from debias.weighting.registry import LATENT_ROLE

TOY = dict(
    description="a toy: the first feature, times joint_alpha",
    reads_latents=True,
    reads=("joint_alpha",),
    in_auto_by_default=True,
    caption=Caption(
        how="Weights from the toy: the first feature times {joint_alpha:g}.",
        large_weights="Images with a large first feature get large weights.",
    ),
)


def toy_log_weights(inputs, settings):
    """Log-weight = joint_alpha x the first feature: larger features, larger weights."""
    return inputs.latents[:, 0].double() * settings.joint_alpha


@pytest.fixture
def toy():
    register_strategy("toy", toy_log_weights, **TOY)
    yield STRATEGIES["toy"]
    del STRATEGIES["toy"]


def test_a_registered_strategy_is_an_auto_candidate_and_a_valid_setting(toy):
    assert FitConfig(weighting=WeightingSettings(strategy="auto")).candidates[-1] == "toy"
    validate(FitConfig(weighting=WeightingSettings(strategy="toy", joint_alpha=2.0)))
    with pytest.raises(UserError, match=r"does not read --bins \(read by histogram\)"):
        validate(FitConfig(weighting=WeightingSettings(strategy="toy", bins=5)))


def test_a_registered_strategy_computes_weights_from_features(toy):
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    weights = weights_from_features(x, [0, 0, 0, 0], strategy="toy", joint_alpha=0.5)
    expected = np.exp(0.5 * x[:, 0])
    np.testing.assert_allclose(weights, expected / expected.mean())
    with pytest.raises(ValueError, match="uniform, toy, auto, got 'not-registered'"):
        weights_from_features(x, [0, 0, 0, 0], strategy="not-registered")


def test_a_registered_strategy_has_its_report_caption(toy):
    config = {"weighting_strategy": "toy", "settings": {"weighting": {"strategy": "toy", "joint_alpha": 0.25}}}
    text = describe(config)
    assert text.how == "Weights from the toy: the first feature times 0.25."
    assert text.large_weights == "Images with a large first feature get large weights."
    assert text.uses_latents and text.latent_role == LATENT_ROLE and not text.uses_group_labels


def test_a_registered_strategy_is_a_command_line_choice(tmp_path):
    # The command line builds its options when debias.cli is imported: register first, as a plugin would.
    script = textwrap.dedent(
        f"""
        import sys
        from debias.weighting import Caption, register_strategy
        TOY = {TOY!r}
        register_strategy("toy", lambda inputs, settings: inputs.latents[:, 0], **TOY)
        from debias.cli import main
        main(sys.argv[1:])
        """
    )
    env = {**os.environ, "COLUMNS": "1000"}
    for command in (["fit", "--help"], ["weights", "--help"]):
        out = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert "|uniform|toy" in out.stdout, command
    fit_help = subprocess.run([sys.executable, "-c", script, "fit", "--help"], capture_output=True, text=True, env=env)
    assert "(default: errors,toy)" in fit_help.stdout  # auto's default candidates


def test_the_registry_refuses_a_setting_it_does_not_have():
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("joint", toy_log_weights, **TOY)
    with pytest.raises(ValueError, match="lacks: gamma"):
        register_strategy("toy2", toy_log_weights, **{**TOY, "reads": ("gamma",)})
    with pytest.raises(ValueError, match="lacks: beta"):
        register_strategy("toy2", toy_log_weights, **{**TOY, "caption": Caption("{beta}", "")})
    assert "toy2" not in STRATEGIES
