"""The report reads a run's files as every other reader does (debias.run_folder): a damaged file is one message."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DBVAE, GROUPS, LABELS, UNIFORM, make_run, predictions_table

from debias.cli import main
from debias.errors import UserError
from debias.report import write_report

ROWS = 6


def weights_frame(**columns) -> pd.DataFrame:
    base = {"sample_id": [f"t{i}" for i in range(ROWS)], "weight": [1.0] * ROWS, "label": [0, 1] * (ROWS // 2)}
    return pd.DataFrame({**base, **columns})


def run_with_weights(folder, frame: pd.DataFrame | None = None, text: str | None = None):
    run = make_run(folder, predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS), ["g"])
    config = json.loads((run / "config.json").read_text())
    config["dataset"]["sizes"]["train"] = ROWS
    (run / "config.json").write_text(json.dumps(config))
    if frame is not None:
        frame.to_csv(run / "weights.csv", index=False)
    else:
        (run / "weights.csv").write_text(text)
    return run


@pytest.mark.parametrize(
    "frame, text, fragment",
    [
        (weights_frame(weight=[1.0, float("nan"), 1, 1, 1, 1]), None, "1 of 6 rows have a missing (NaN) weight"),
        (weights_frame(weight=[1.0, -2, 1, 1, 1, 1]), None, "a weight <= 0"),
        (weights_frame(weight=[1.0, 0, 1, 1, 1, 1]), None, "a weight <= 0"),
        (weights_frame().iloc[:4], None, "has 4 rows but the run's training split has 6"),
        (weights_frame(sample_id=["t0", "t0", "t2", "t3", "t4", "t5"]), None, "sample ids appear more than once"),
        (weights_frame(weight=["1", "heavy", "1", "1", "1", "1"]), None, "a weight that is not a number"),
        (weights_frame().drop(columns="weight"), None, "has no column 'weight'"),
        (None, "", "cannot read"),
        (weights_frame(label=[0, 1, 2, 0, 1, 0]), None, "the `label` column must hold 0 or 1"),
    ],
)
def test_a_damaged_weights_csv_is_one_message(tmp_path, frame, text, fragment):
    run = run_with_weights(tmp_path / "run", frame, text)
    with pytest.raises(UserError) as caught:
        write_report(run, resamples=100)
    assert fragment in str(caught.value) and "weights.csv" in str(caught.value)
    result = CliRunner().invoke(main, ["report", str(run), "--n-boot", "100"])
    assert result.exit_code == 1 and "Traceback" not in result.output and fragment in result.output
    assert not (run / "report.html").exists()


def test_sample_ids_are_text_wherever_they_are_read(tmp_path):
    predictions = predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS)
    predictions["sample_id"] = [f"{i:03d}" for i in range(len(LABELS))] * 2  # "007" must stay "007"
    run = make_run(tmp_path / "run", predictions, ["g"])
    from debias.report.run import load_run
    from debias.run_folder import RunFolder

    assert load_run(run).predictions["sample_id"].tolist()[:3] == ["000", "001", "002"]
    assert RunFolder(run).predictions("test")["sample_id"].iloc[7] == "007"


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda p: p.assign(pred=2), "has `pred` values other than 0 and 1"),
        (lambda p: p.assign(prob="x"), "has `prob` values that are not probabilities"),
        (lambda p: p.drop(columns="attr_g"), "lacks the group columns ['g']"),
        (lambda p: p.drop(columns="label"), "lacks the columns ['label']"),
    ],
)
def test_damaged_predictions_are_one_message(tmp_path, change, fragment):
    predictions = change(predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS))
    run = make_run(tmp_path / "run", predictions, ["g"])
    result = CliRunner().invoke(main, ["report", str(run), "--n-boot", "100"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert fragment in result.output and "predictions_test.csv" in result.output
