"""`debias report --out` replaces only reports (and a run's files never); a report of a stopped fit says how to resume."""

import json
import os

from click.testing import CliRunner
from conftest import DBVAE, GROUPS, LABELS, UNIFORM, make_run, predictions_table

from debias.cli import main
from debias.run_dir import lock_run_folder

WEIGHTS_CSV = "sample_id,weight,log_density,label\ns0,1.0,0.0,1\n"


def hand_run(folder):
    run = make_run(folder, predictions_table({"uniform": UNIFORM, "dbvae": DBVAE}, LABELS, GROUPS), ["g"])
    (run / "weights.csv").write_text(WEIGHTS_CSV)
    return run


def report(*args):
    return CliRunner().invoke(main, ["report", *map(str, args), "--n-boot", "100"])


def assert_one_message(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def test_a_runs_own_files_are_never_replaced(tmp_path):
    run = hand_run(tmp_path / "run")
    config = (run / "config.json").read_bytes()
    assert_one_message(report(run, "--out", run / "weights.csv"), "must name an .html file")
    for extra in ([], ["--overwrite"]):
        assert_one_message(
            report(run, "--out", run / "config.json", *extra), "would replace config.json, a file of the run"
        )
    assert (run / "weights.csv").read_text() == WEIGHTS_CSV and (run / "config.json").read_bytes() == config
    assert not (run / "config.html").exists()


def test_other_files_need_overwrite_and_earlier_reports_do_not(tmp_path):
    run = hand_run(tmp_path / "run")
    mine = tmp_path / "shared" / "notes.html"
    mine.parent.mkdir()
    mine.write_text("<p>my notes</p>")
    assert_one_message(
        report(run, "--out", mine),
        f"{mine} already exists and is not a report written by `debias report`",
        "--overwrite",
    )
    assert mine.read_text() == "<p>my notes</p>" and not mine.with_suffix(".json").exists()
    assert report(run, "--out", mine, "--overwrite").exit_code == 0
    assert "Fairness report" in mine.read_text()

    again = report(run, "--out", mine)  # its own earlier output: replaced without asking
    assert again.exit_code == 0, again.output
    assert json.loads(mine.with_suffix(".json").read_text())["run_dir"] == str(run.resolve())
    assert report(run).exit_code == 0 and report(run).exit_code == 0  # RUN/report.html, twice


def stopped_run(folder):
    """A run folder as a fit killed in its first epoch leaves it: config.json saying running, no predictions."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "status": "running", "settings": {}}))
    return folder


def test_report_of_a_stopped_fit_says_how_to_resume_it(tmp_path):
    run = stopped_run(tmp_path / "run")
    assert_one_message(
        report(run),
        f"the fit in {run} did not finish",
        f"Continue it with `debias fit --resume {run}`, then run `debias report {run}`",
    )


def test_report_of_a_fit_still_running_says_so(tmp_path):
    run = stopped_run(tmp_path / "run")
    with lock_run_folder(run):
        assert_one_message(report(run), f"the fit in {run} is still running (process {os.getpid()} on host")
