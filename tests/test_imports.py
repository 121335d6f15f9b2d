"""Imports flow one way: the settings and the command line's help load without the training stack."""

import subprocess
import sys

import pytest


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import debias.fit.config",
        "import debias.weighting",
        "from debias.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "from debias.cli import main\ntry:\n    main(['fit', '--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_settings_and_help_load_no_torch(code):
    loaded = loaded_after(code)
    assert "debias.fit.config" in loaded or "debias.weighting" in loaded
    assert "torch" not in loaded, code
    assert "debias.fit.draws" not in loaded  # the settings no longer import the draws that import them
