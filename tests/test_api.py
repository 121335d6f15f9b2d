"""The public Python API: `import debias` and the names it exports, with their docstring examples run."""

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import debias
import debias.features
import debias.result

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [debias.features, debias.result], ids=lambda m: m.__name__)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert tried > 0 and failures == 0


def test_import_is_light_and_names_resolve_on_use():
    code = (
        "import sys, debias; print('torch' in sys.modules); debias.weights_from_features; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.split() == ["False", "True"]
    assert {"run", "FitResult", "weights_from_features", "weights_from_errors", "SampleWeights"} <= set(debias.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        debias.nope  # noqa: B018


def test_the_issue_check_prints_one():
    rng = np.random.default_rng(0)
    w = debias.weights_from_features(rng.normal(size=(1000, 8)), np.r_[np.zeros(700), np.ones(300)], strategy="joint")
    assert abs(w.mean() - 1.0) < 1e-6 and w.dtype == np.float64 and (w > 0).all()
    # joint keeps each class's share: 700 and 300 rows' worth
    assert w[:700].sum() == pytest.approx(700) and w[700:].sum() == pytest.approx(300)


def test_groups_through_the_api_is_aif360_reweighing():
    # men: 1 blond, 4 not; women: 3 blond, 2 not -> w = P(g) P(y) / P(g, y): 2.0, 0.75, 2/3, 1.5
    groups = ["M"] * 5 + ["F"] * 5
    labels = [1, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    w = debias.weights_from_features(np.zeros((10, 2)), labels, strategy="groups", groups=groups)
    np.testing.assert_allclose(w, [2.0, 0.75, 0.75, 0.75, 0.75, 2 / 3, 2 / 3, 2 / 3, 1.5, 1.5], rtol=1e-12)
    with pytest.raises(ValueError, match="needs groups"):
        debias.weights_from_features(np.zeros((10, 2)), labels, strategy="groups")


def test_errors_from_class_probabilities_and_with_features():
    # three classes; rows 1 and 2 are mistakes (arg-max 0 for a 1, 2 for a 0)
    probabilities = [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]
    w = debias.weights_from_errors(probabilities, [1, 1, 0, 2], upweight=3)
    # each class keeps its share by default: classes 0 and 2 hold one row each, which keeps weight 1
    np.testing.assert_allclose(w, [0.5, 1.5, 1.0, 1.0])
    free = debias.weights_from_errors(probabilities, [1, 1, 0, 2], upweight=3, keep_class_shares=False)
    np.testing.assert_allclose(free, [0.5, 1.5, 1.5, 0.5])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 3)), np.arange(200) % 2
    p = np.where(rng.random(200) < 0.1, 1 - y, y) * 0.8 + 0.1
    both = debias.weights_from_errors(p, y, strategy="errors+joint", features=x)
    assert both.mean() == pytest.approx(1.0) and both.std() > 0
    with pytest.raises(ValueError, match="needs features"):
        debias.weights_from_errors(p, y, strategy="errors+latent")


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda: debias.weights_from_features(np.zeros(5), [0] * 5), ValueError, "matrix"),
        (lambda: debias.weights_from_features(np.zeros((5, 2)), [0] * 4), ValueError, "labels has 4 rows"),
        (lambda: debias.weights_from_features(np.zeros((3, 2)), [0, 0.5, 1]), ValueError, "whole class numbers"),
        (lambda: debias.weights_from_features(np.zeros((3, 2)), [0, 1, 1], alpah=1), debias.UserError, "alpah"),
        (lambda: debias.weights_from_features(np.zeros((3, 2)), [0, 1, 1], strategy="nope"), ValueError, "nope"),
        (lambda: debias.weights_from_errors([0.5, 1.5], [0, 1]), ValueError, "in [0, 1]"),
        (lambda: debias.weights_from_errors([0.5, 0.2], [0, 1], upweight=0.5), ValueError, "--errors-upweight"),
    ],
)
def test_bad_inputs_say_what_is_wrong(call, error, fragment):
    with pytest.raises(error) as caught:
        call()
    assert fragment in str(caught.value)


def test_a_run_from_python_then_read_back(tmp_path):
    out = tmp_path / "run"
    result = debias.run(
        limit=64,
        epochs=1,
        image_size=32,
        latent_dim=4,
        batch_size=32,
        models="uniform",
        out=out,
        progress=False,
        vae_warmup_steps=0,
    )
    assert isinstance(result, debias.FitResult) and result.run_dir == out
    assert list(result.table().index) == ["uniform", "dbvae"]
    assert result.table().loc["dbvae", "accuracy"] == result.results["dbvae"]["accuracy"]
    assert len(result.weights) == len(result.latents) == result.summary["dataset"]["sizes"]["train"]
    assert result.config.latent_dim == 4 and not result.uses_group_labels
    assert repr(debias.load_run(out)).startswith(f"FitResult({str(out)!r}")
    again = debias.run(out / "config.json", seed=1, out=tmp_path / "again", progress=False)
    assert again.summary["settings"] == dict(result.summary["settings"], seed=1)


def test_load_run_of_an_unfinished_fit_says_how_to_finish_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 1, "status": "running", "settings": {}}))
    with pytest.raises(debias.UserError, match=r"debias.resume\("):
        debias.load_run(tmp_path)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (
            lambda: debias.weights_from_features(
                np.zeros((4, 2)), [0, 1, 0, 1], strategy="groups", groups=["a", None, "b", "a"]
            ),
            "groups is missing (None, NaN or empty) on 1 of 4 rows",
        ),
        (
            lambda: debias.weights_from_features(
                np.zeros((4, 2)),
                [0, 1, 0, 1],
                strategy="balanced-groups",
                groups=np.array(["a", np.nan, "b", " "], dtype=object),
            ),
            "on 2 of 4 rows",
        ),
        (
            lambda: debias.weights_from_features(np.zeros((4, 2)), [0, 1, 0, 1], strategy="joint", bins=5),
            "does not read --bins (read by histogram)",
        ),
        (
            lambda: debias.weights_from_errors([0.9, 0.2], [1, 0], joint_dims=2),
            "does not read --joint-dims",
        ),
        (lambda: debias.weights_from_features(np.zeros((3, 2)), [0, 1, 1], bins="x"), "must be a whole number"),
        (lambda: debias.run(config=3), "config must be a FitConfig"),
    ],
)
def test_every_refusal_of_the_api_is_a_user_error(call, fragment):
    with pytest.raises(debias.UserError) as caught:
        call()
    assert fragment in str(caught.value) and isinstance(caught.value, ValueError)
