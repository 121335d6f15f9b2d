"""`debias report RUN1 RUN2 ...`: runs side by side, paired tests against a baseline on the same test images."""

import json

import pytest
from click.testing import CliRunner
from conftest import DBVAE, GROUPS, LABELS, UNIFORM, make_run, predictions_table

from debias.cli import main
from debias.errors import UserError
from debias.report import write_comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs on the same ten test images: `first`'s DB-VAE predicts as uniform does, `second`'s better."""
    root = tmp_path_factory.mktemp("compare")
    first = make_run(
        root / "first",
        predictions_table({"uniform": UNIFORM, "dbvae": UNIFORM}, LABELS, GROUPS),
        ["g"],
        config={"weighting_strategy": "histogram", "settings": {"seed": 0, "weighting": {"strategy": "histogram"}}},
    )
    second = make_run(
        root / "second",
        predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS),
        ["g"],
        config={"weighting_strategy": "errors", "settings": {"seed": 1, "weighting": {"strategy": "errors"}}},
    )
    return root, first, second


def test_comparison_tests_each_model_against_the_baseline_runs(runs):
    root, first, second = runs
    path = write_comparison([first, second], root / "compare.html", resamples=100)
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["baseline"] == "first" and report["test_images"] == 10
    assert [r["weighting"] for r in report["runs"]] == ["histogram", "errors"]
    assert report["runs"][0]["models"]["dbvae"]["vs_baseline"] is None
    dbvae = report["runs"][1]["models"]["dbvae"]
    # second's DB-VAE against first's (which predicts as uniform does): the hand table's numbers
    assert dbvae["worst_group_accuracy"] == pytest.approx(0.5) and dbvae["worst_group_count"] == 2
    assert dbvae["vs_baseline"]["accuracy"]["fixed"] == 3 and dbvae["vs_baseline"]["accuracy"]["broken"] == 2
    assert dbvae["vs_baseline"]["worst_group_accuracy"]["p_value"] == pytest.approx(0.75)
    assert report["runs"][1]["models"]["uniform"]["vs_baseline"]["accuracy"]["p_value"] == 1.0
    assert report["summary"] == [
        "second: DB-VAE raised worst-group accuracy from 33.3% in first to 50.0% (group g=A|label=0, 2 test images), "
        "not significant (p = 0.75)."
    ]
    html = path.read_text()
    assert "<script" not in html.lower() and "baseline</span>" in html


def test_baseline_can_be_named(runs):
    root, first, second = runs
    path = write_comparison([first, second], root / "b.html", baseline=second, resamples=100)
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["baseline"] == "second" and report["runs"][1]["baseline"]
    assert report["summary"][0].startswith("first: DB-VAE lowered worst-group accuracy from 50.0% in second to 33.3%")


def test_runs_tested_on_other_images_are_refused(runs, tmp_path):
    _, first, _ = runs
    other = predictions_table({"uniform": UNIFORM}, LABELS, GROUPS)
    other["sample_id"] = other["sample_id"].str.replace("s", "t")
    elsewhere = make_run(tmp_path / "elsewhere", other, ["g"])
    with pytest.raises(
        UserError, match=r"tested on other images than the baseline .*\(20 test ids are in one run only\)"
    ):
        write_comparison([first, elsewhere], tmp_path / "c.html")
    regrouped = make_run(tmp_path / "regrouped", predictions_table({"uniform": UNIFORM}, LABELS, GROUPS), [])
    with pytest.raises(UserError, match="compare runs with the same --groups"):
        write_comparison([first, regrouped], tmp_path / "c.html")
    result = CliRunner().invoke(main, ["report", str(first), str(elsewhere), "--out", str(tmp_path / "c.html")])
    assert result.exit_code != 0 and "tested on other images" in result.output and "Traceback" not in result.output


def test_cli_compares_several_runs(runs, tmp_path):
    _, first, second = runs
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(main, ["report", str(first), str(second), "--out", str(out), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert "not significant (p = 0.75)" in result.output and f"Comparison: {out}" in result.output
