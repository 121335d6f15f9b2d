"""groups.csv and metric_frames: the report's numbers in the forms pandas and fairlearn users already read."""

import json

import pandas as pd
import pytest
from conftest import DBVAE, GROUPS, LABELS, UNIFORM, make_run, predictions_table

from debias.errors import UserError
from debias.report import metric_frames, write_report


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two group columns (g, h) so each group has two attribute fields."""
    h = [0, 1] * 5
    predictions = predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS).assign(attr_h=h * 2)
    folder = make_run(tmp_path_factory.mktemp("exports") / "run", predictions, ["g", "h"])
    write_report(folder, resamples=100)
    return folder


def test_groups_csv_reproduces_report_json(run):
    report = json.loads((run / "report.json").read_text())
    table = pd.read_csv(run / "groups.csv")
    assert list(table.columns) == [
        "model",
        "group",
        "g",
        "h",
        "label",
        "n",
        "accuracy",
        "ci_low",
        "ci_high",
        "true_positive_rate",
        "false_positive_rate",
        "selection_rate",
    ]
    assert len(table) == sum(len(m["groups"]) for m in report["models"].values())
    for row in table.itertuples():
        group = report["models"][row.model]["groups"][row.group]
        assert row.accuracy == pytest.approx(group["accuracy"])
        assert [row.ci_low, row.ci_high] == pytest.approx(group["accuracy_ci"])
        assert row.n == group["count"]
        assert {"g": row.g, "h": row.h, "label": row.label} == group["key"]
    # hand count: group A, h=0 holds rows 0 and 2 (labels 1, 0); uniform predicts 1, 0 -> both right
    a0 = table[(table.model == "uniform") & (table.g == "A") & (table.h == 0) & (table.label == 1)]
    assert a0[["n", "accuracy"]].to_numpy().tolist() == [[1, 1.0]]


def test_metric_frames_are_fairlearn_frames_with_the_reports_numbers(run):
    report = json.loads((run / "report.json").read_text())
    frames = metric_frames(run)
    assert list(frames) == ["uniform", "dbvae"]
    by_group = frames["dbvae"].by_group
    assert list(by_group.index.names) == ["g", "h", "label"]
    for name, group in report["models"]["dbvae"]["groups"].items():
        key = group["key"]
        assert by_group.loc[(key["g"], key["h"], key["label"]), "accuracy"] == pytest.approx(group["accuracy"]), name
    assert frames["uniform"].overall["accuracy"] == pytest.approx(0.7)
    assert frames["dbvae"].group_min()["accuracy"] == pytest.approx(report["models"]["dbvae"]["worst_group_accuracy"])


def test_metric_frames_of_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        metric_frames(tmp_path / "nope")
