"""report.json's contract, the HTML's safety (escaping, nothing external), and `debias report`."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DBVAE, GROUPS, LABELS, UNIFORM, make_run, predictions_table

from debias.cli import main
from debias.errors import UserError
from debias.report import write_report
from debias.report.headline import headline
from debias.report.run import report_paths

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory):
    """Four named models plus an unknown one, on the hand-made table; group B is named with a <script> tag."""
    groups = [g if g == "A" else SCRIPT for g in GROUPS]
    models = {"uniform": UNIFORM, "dbvae": DBVAE, "sampler": UNIFORM, "oracle": DBVAE, "mystery": LABELS}
    run = make_run(tmp_path_factory.mktemp("hand") / "run", predictions_table(models, LABELS, groups), ["g"])
    path = write_report(run, resamples=200)
    return path, json.loads(path.with_suffix(".json").read_text()), path.read_text()


def test_json_has_the_contract_keys_for_every_model(hand_report):
    _, report, _ = hand_report
    assert list(report["models"]) == ["uniform", "sampler", "dbvae", "oracle", "mystery"]
    for name, model in report["models"].items():
        assert {"accuracy", "worst_group_accuracy", "worst_group", "groups", "accuracy_gap", "parity"} <= set(model), (
            name
        )
        for row in model["groups"].values():
            assert {
                "count",
                "accuracy",
                "accuracy_ci",
                "true_positive_rate",
                "false_positive_rate",
                "selection_rate",
            } <= set(row)
            assert len(row["accuracy_ci"]) == 2
    assert report["settings"]["data"] == "hand-made"
    assert report["models"]["uniform"]["accuracy"] == pytest.approx(0.7)
    assert report["models"]["dbvae"]["worst_group_accuracy"] == pytest.approx(0.5)
    assert report["models"]["oracle"]["uses_group_labels"] is True
    assert report["models"]["uniform"]["uses_group_labels"] is False
    assert report["models"]["mystery"]["label"] == "mystery"


def test_json_is_strict_json(hand_report):
    path, _, _ = hand_report
    json.loads(path.with_suffix(".json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_summary_states_the_answer_with_numbers_and_whether_it_is_noise(hand_report):
    _, report, html = hand_report
    # uniform: worst group B|0 at 1/3; DB-VAE: A|0 at 1/2. Overall 7/10 -> 8/10 with 3 images fixed
    # and 2 broken: McNemar's p of 3 heads in 5 is 1.
    assert report["summary"] == (
        f"DB-VAE (histogram weights) raised worst-group accuracy from 33.3% (group g={SCRIPT}|label=0, 3 test images) "
        "to 50.0% (group g=A|label=0, 2 test images), not significant (p = 0.75); "
        "overall accuracy rose by 10.0 points (70.0% → 80.0%), not significant (p = 1)."
    )
    assert "Group-balanced oracle (uses group labels)" in html
    tests = report["paired_tests"]["models"]["dbvae"]
    assert (tests["accuracy"]["fixed"], tests["accuracy"]["broken"]) == (3, 2)
    assert tests["accuracy"]["p_value"] == pytest.approx(1.0)


def test_group_names_are_escaped_and_the_page_has_no_script(hand_report):
    _, _, html = hand_report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_html_names_no_external_url(hand_report):
    _, _, html = hand_report
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", html, re.I)
    for src in re.findall(r'src="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,")
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith("#")


def _model(acc, worst, group, count=100):
    return {
        "label": "x",
        "accuracy": acc,
        "worst_group_accuracy": worst,
        "worst_group": group,
        "groups": {group: {"count": count}},
    }


def _tests(worst_p, overall_p):
    return {"dbvae": {"worst_group_accuracy": {"p_value": worst_p}, "accuracy": {"p_value": overall_p}}}


def test_headline_says_significant_or_not_and_quotes_p():
    models = {"uniform": _model(0.95, 0.62, "g=dark"), "dbvae": _model(0.93, 0.815, "g=dark")}
    text, html = headline(models, _tests(0.003, 0.2), weighting="errors+joint")
    assert text == (
        "DB-VAE (errors+joint weights) raised worst-group accuracy from 62.0% to 81.5% (group g=dark), "
        "significant (p = 0.003); overall accuracy fell by 2.0 points (95.0% → 93.0%), not significant (p = 0.2)."
    )
    assert "<strong>81.5%</strong>" in html and "<strong>p = 0.003</strong>" in html


def test_headline_names_a_small_group_and_constant_predictors():
    models = {"uniform": _model(0.5, 0.0, "Male=1|label=1", 8), "dbvae": _model(0.5, 0.0, "Male=1|label=1", 8)}
    text, _ = headline(models, _tests(1.0, 1.0), constant={"uniform": 0, "dbvae": 0})
    assert text == (
        "DB-VAE left worst-group accuracy unchanged at 0.0% (group Male=1|label=1, 8 test images; p = 1); "
        "overall accuracy unchanged at 50.0% (p = 1). x and x predict one class for every test image, "
        "so this compares constant predictors."
    )
    _, html = headline({"uniform": _model(0.9, 0.6, "<b>"), "dbvae": _model(0.8, 0.5, "<b>")})
    assert "&lt;b&gt;" in html and "<b>" not in html


def test_real_run_report_has_every_section(tiny_run, tiny_report):
    report = json.loads(tiny_report.with_suffix(".json").read_text())
    html = tiny_report.read_text()
    assert tiny_report == tiny_run / "report.html"
    fit = json.loads((tiny_run / "config.json").read_text())["results"]["test"]
    for name in ("uniform", "dbvae"):
        assert report["models"][name]["accuracy"] == pytest.approx(fit[name]["accuracy"])
        assert report["models"][name]["worst_group_accuracy"] == pytest.approx(fit[name]["worst_group_accuracy"])
    weights = report["training_weights"]["groups"]
    assert set(weights) >= {"subgroup=common|label=1", "subgroup=nonface|label=0"}
    assert sum(r["count"] for r in weights.values()) == report["dataset"]["sizes"]["train"]
    assert report["notes"] == []
    for section in (
        'id="summary"',
        'id="groups"',
        'id="weights"',
        'id="curves"',
        'id="latent"',
        "most upweighted",
        "least upweighted",
        "Reconstructions",
        "Latent traversals",
    ):
        assert section in html, section
    assert html.count("data:image/png;base64,") >= 3 + 2 * 16 + 6


def test_report_says_how_long_each_model_trained_and_that_it_trained_once(tiny_run, tiny_report):
    report = json.loads(tiny_report.with_suffix(".json").read_text())
    html = tiny_report.read_text()
    # 8 warm-up steps of 4 per epoch (120 images, batch 32) add 2 epochs to --epochs 2, for every model
    assert report["epochs_trained"] == {"dbvae": 4, "oracle": 4, "sampler": 4, "uniform": 4}
    assert "<td>epochs per model</td>" in html and "dbvae 4, oracle 4, sampler 4, uniform 4" in html
    assert "Each model trained once" in html


def test_out_names_the_file_and_its_json(tmp_path):
    assert report_paths("runs/r", None) == (Path("runs/r/report.html"), Path("runs/r/report.json"))
    elsewhere = tmp_path / "elsewhere"
    assert report_paths("runs/r", elsewhere / "mine.html") == (elsewhere / "mine.html", elsewhere / "mine.json")
    assert report_paths("runs/r", tmp_path) == (
        tmp_path / "report.html",
        tmp_path / "report.json",
    )  # an existing folder
    assert report_paths("runs/r", elsewhere / "new") == (
        elsewhere / "new" / "report.html",
        elsewhere / "new" / "report.json",
    )
    # `--out x.json` still gets its HTML beside it
    assert report_paths("runs/r", elsewhere / "mine.json") == (elsewhere / "mine.html", elsewhere / "mine.json")


def test_cli_report_writes_where_asked(hand_report, tmp_path):
    path, _, _ = hand_report
    out = tmp_path / "shared" / "hand.html"
    result = CliRunner().invoke(main, ["report", str(path.parent), "--out", str(out), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".json").is_file() and (out.parent / "hand.groups.csv").is_file()
    assert "DB-VAE (histogram weights) raised worst-group accuracy" in result.output
    assert "not significant (p = 0.75)" in result.output


def test_cli_report_on_a_missing_folder_is_one_clear_message(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "does not exist" in result.output and "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        write_report(tmp_path / "empty")


def test_a_dataset_that_cannot_be_reloaded_costs_sections_not_the_report(tmp_path):
    run = make_run(tmp_path / "run", predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS), ["g"])
    (run / "weights.csv").write_text("sample_id,weight,log_density,label\ns0,1.0,0.0,1\n")
    path = write_report(run, resamples=100)
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["training_weights"] is None
    assert any("could not be reloaded" in note for note in report["notes"])
    assert "could not be reloaded" in path.read_text()


def test_other_models_are_compared_with_uniform_with_their_p(hand_report):
    _, _, html = hand_report
    # sampler predicts as uniform does (no discordant image: p = 1); the oracle as the DB-VAE (p = 0.75)
    assert (
        "For comparison, worst-group accuracy of Weighted sampler (weights.csv) 33.3%, the same as uniform, "
        "not significant (p = 1); Group-balanced oracle (uses group labels) 50.0%, 16.7 points above uniform, "
        "not significant (p = 0.75);"
    ) in html
