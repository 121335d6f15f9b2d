"""Fixtures shared by the pipeline tests: a real, tiny run folder."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fakes import make_fake_celeba  # noqa: E402


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory):
    """A real, tiny `debias fit` on a fake CelebA with --groups Male: its weights.csv has group_Male."""
    from click.testing import CliRunner

    from debias.cli import main

    root = tmp_path_factory.mktemp("celeba-run")
    celeba = make_fake_celeba(root / "celeba", n=60)
    out = root / "run"
    args = ["fit", "--data", "celeba", "--root", str(celeba), "--groups", "Male", "--epochs", "1", "--batch-size", "16"]
    args += ["--latent-dim", "4", "--image-size", "32", "--models", "uniform", "--quiet", "--workers", "0"]
    result = CliRunner().invoke(main, [*args, "--cache-dir", str(root / "cache"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
