"""The report's text follows the run: the strategy actually used, auto's choice, group labels, latent health."""

import json
import shutil

import pandas as pd
import pytest
from conftest import COLLAPSED, DBVAE, GROUPS, HEALTHY, LABELS, UNIFORM, make_run, predictions_table

from debias.report import write_report
from debias.report.strategy import auto_sentence, describe

HISTOGRAM_WORDS = ("histograms behind the weights", "rare along some dimension", "Share of DB-VAE draws")


def _config(strategy, **extra):
    return {"weighting_strategy": strategy, "settings": {"weighting": {"strategy": strategy, "joint_dims": 4}}, **extra}


def test_errors_strategies_are_not_described_as_latent_rarity():
    for strategy in ("errors", "errors+joint", "errors+latent"):
        text = describe(_config(strategy, early_errors={"epoch": 2}))
        words = " ".join([text.how, text.large_weights, text.traversal_axes, text.latent_role])
        assert "got wrong after epoch 2" in text.how, strategy
        assert not any(w in words for w in HISTOGRAM_WORDS), strategy
    assert not describe(_config("errors")).uses_latents
    assert "joint density" in describe(_config("errors+joint")).how
    assert (
        describe(_config("histogram")).traversal_axes == "the histograms behind the weights are taken along these axes"
    )


def test_an_uninformative_early_classifier_is_named():
    early = {"epoch": 1, "error_rate": 0.125, "majority_error_rate": 0.125, "informative": False}
    how = describe(_config("errors", early_errors=early)).how
    assert "(12.5% against 12.5%), so these errors mark a class rather than rare images" in how
    assert "mark a class" not in describe(_config("errors", early_errors=dict(early, informative=True))).how


def test_class_shares_are_mentioned_when_kept():
    def config(strategy, keep):
        settings = {"strategy": strategy, "keep_class_shares": keep}
        return {"weighting_strategy": strategy, "settings": {"weighting": settings}}

    sentence = "every class keeps its share of the draws"
    assert sentence in describe(config("errors", True)).how
    assert sentence not in describe(config("errors", False)).how
    assert sentence not in describe(config("classes", True)).how  # balancing classes is its point
    assert describe(config("joint", True)).how.count("keeps its share") == 1  # joint says so already


def test_group_label_strategies_say_so():
    text = describe(_config("balanced-groups", uses_group_labels=True))
    assert text.uses_group_labels and "group labels" in text.how
    assert describe(_config("groups")).uses_group_labels
    assert not describe(_config("classes")).uses_group_labels


def _candidate(weighted: float, p_value: float, loses: list[str]) -> dict:
    figures = {"uniform": 0.80, "weighted": weighted, "difference": weighted - 0.80, "p_value": p_value}
    return {"worst_class_accuracy": weighted, "versus_uniform": {"worst_class_accuracy": figures, "loses": loses}}


def _selection(chosen: str, candidates: dict) -> dict:
    return {
        "chosen": chosen,
        "criterion": "worst_class_accuracy",
        "candidates": {"uniform": {"worst_class_accuracy": 0.80}, **candidates},
        "val_groups": [],
        "accuracy_budget": 2.0,
        "epochs": 2,
    }


def test_auto_names_what_it_chose_and_describes_that():
    selection = _selection("errors", {"errors": _candidate(0.9, 0.001, [])})
    config = {"settings": {"weighting": {"strategy": "auto"}}, "weighting_selection": selection}
    assert describe(config).name == "errors"
    assert auto_sentence(config) == (
        "--weighting auto chose errors: validation worst class accuracy errors 90.0% against 80.0% (p = 0.001); "
        "after 2 epoch(s) each."
    )


def test_auto_says_why_it_kept_uniform_sampling():
    selection = _selection(
        "uniform", {"errors": _candidate(0.9, 0.001, ["accuracy"]), "histogram": _candidate(0.81, 0.6, [])}
    )
    config = {"settings": {"weighting": {"strategy": "auto"}}, "weighting_selection": selection}
    assert describe(config).name == "uniform"
    sentence = auto_sentence(config)
    assert sentence.startswith("--weighting auto kept uniform sampling (every weight 1)")
    assert "errors 90.0% against 80.0% (p = 0.001), but it loses accuracy" in sentence
    assert "histogram 81.0% against 80.0% (p = 0.6)" in sentence


@pytest.fixture(scope="module")
def errors_joint_report(tiny_run, tmp_path_factory):
    """The tiny real run, its config.json saying the weights came from errors+joint."""
    run = tmp_path_factory.mktemp("errors-joint") / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["weighting_strategy"] = "errors+joint"
    config["settings"]["weighting"]["strategy"] = "errors+joint"
    config["early_errors"] = {"epoch": 1, "error_rate": 0.1, "majority_error_rate": 0.5, "informative": True}
    (run / "config.json").write_text(json.dumps(config))
    path = write_report(run, resamples=100)
    return path.read_text(), json.loads(path.with_suffix(".json").read_text())


def test_an_errors_joint_report_describes_errors_joint(errors_joint_report):
    html, report = errors_joint_report
    assert report["weighting"]["name"] == "errors+joint"
    assert report["summary"].startswith("DB-VAE (errors+joint weights) ")
    for words in ("Rare-looking", *HISTOGRAM_WORDS):
        assert words not in html, words
    assert "Images the early uniform classifier got wrong get large weights" in html
    assert "the joint-density factor is taken on the top principal directions" in html
    assert "Share of draws by weights.csv" in html


def test_a_collapsed_vae_is_a_warning_and_a_section(tmp_path):
    history = pd.DataFrame(
        {
            "model": ["uniform", "dbvae", "dbvae"],
            "epoch": [1, 1, 2],
            "kl_nats": [None, 3.0, 1.4],
            "active_dims": [None, 10, 3],
            "reconstruction_ratio": [None, 0.99, 0.98],
        }
    )
    predictions = predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS)
    run = make_run(tmp_path / "run", predictions, ["g"], config={"latent_health": COLLAPSED}, history=history)
    path = write_report(run, resamples=100)
    html, report = path.read_text(), json.loads(path.with_suffix(".json").read_text())
    assert report["warnings"][0].startswith("The DB-VAE's latent space collapsed (1.4 nats per image, 3 of 100")
    assert report["warnings"][0].endswith("Lower --beta (now 0.01) to 0.0005 and fit again.")
    assert html.index('class="warnings"') < html.index('class="answer"')
    assert "<h3>Latent health</h3>" in html and "3 of 100" in html and "<strong>Collapsed.</strong>" in html
    assert 'id="curves"' in html


def test_healthy_latents_get_a_section_and_no_warning_and_old_runs_neither(tmp_path):
    predictions = predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS)
    healthy = write_report(make_run(tmp_path / "a", predictions, ["g"], config={"latent_health": HEALTHY}))
    html = healthy.read_text()
    assert "<h3>Latent health</h3>" in html and "Not collapsed." in html and "Linear probe" in html
    assert json.loads(healthy.with_suffix(".json").read_text())["warnings"] == []
    old = write_report(make_run(tmp_path / "b", predictions, ["g"])).read_text()
    assert "Latent health" not in old and 'class="warnings"' not in old
