"""A run folder is read through one room (debias.run_folder) and no file is lost or misread: tried as a hostile user would."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import debias
from debias.cli import main
from debias.run_dir import RECORD, debias_files, remove_debias_files
from debias.run_folder import RunFolder
from debias.weighting import weight_summary

TINY = "--limit 48 --epochs 1 --batch-size 16 --latent-dim 4 --image-size 16 --device cpu --quiet --vae-warmup-steps 0"
TINY = TINY.split() + ["--models", "uniform"]
PACKAGE = Path(debias.__file__).parent


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIAS_CACHE", str(tmp_path / "cache"))


def invoke(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def assert_one_message(result, *needles):
    assert result.exit_code not in (0, None), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in " ".join(result.output.split()), (needle, result.output)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One tiny real fit weighted by errors, so early_probs.npy is there too."""
    out = tmp_path_factory.mktemp("fitted") / "run"
    result = invoke("fit", *TINY, "--weighting", "errors", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(fitted, tmp_path):
    """A fresh copy of the tiny fit for a test to change; call it for more than one."""
    made = []

    def copy(name="A"):
        made.append(shutil.copytree(fitted, tmp_path / name))
        return made[-1]

    return copy


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_fit_records_every_file_it_wrote(fitted):
    record = json.loads((fitted / RECORD).read_text())
    written = {p.name for p in fitted.iterdir()} - {RECORD}
    assert set(record["files"]) == written and all(e["by"] == "debias fit" for e in record["files"].values())
    assert "sha256" in record["files"]["weights.csv"]
    assert sorted(debias_files(fitted)) == sorted([*written, RECORD])


def test_report_and_compare_never_replace_a_runs_files(run_copy, tmp_path):
    a, b = run_copy("A"), run_copy("B")
    before = snapshot(a), snapshot(b)
    for extra in ([], ["--overwrite"]):
        assert_one_message(invoke("report", a, b, "--out", a / "weights.csv", *extra), "must name an .html file")
        assert_one_message(
            invoke("report", a, b, "--out", b / "config.html", *extra), "would replace config.json, a file of the run"
        )
        assert_one_message(
            invoke("report", a, "--out", b / "files.html", *extra), "would replace files.json, a file of the run"
        )
    assert (snapshot(a), snapshot(b)) == before
    mine = tmp_path / "mine" / "page.html"
    mine.parent.mkdir()
    mine.write_text("my page")
    assert_one_message(invoke("report", a, b, "--out", mine, "--n-boot", "100"), "already exists", "--overwrite")
    assert mine.read_text() == "my page"
    assert invoke("report", a, b, "--out", mine, "--n-boot", "100", "--overwrite").exit_code == 0
    again = invoke("report", a, b, "--out", mine, "--n-boot", "100")  # its own earlier comparison
    assert again.exit_code == 0, again.output


def test_weights_never_replace_a_record_beside_them_or_a_runs_file(run_copy, tmp_path):
    a, b = run_copy("A"), run_copy("B")
    mine = tmp_path / "d.json"
    mine.write_text('{"mine": true}')
    assert_one_message(invoke("weights", a, "--out", tmp_path / "d.csv"), f"{mine} already exists", "--overwrite")
    assert mine.read_text() == '{"mine": true}' and not (tmp_path / "d.csv").exists()
    before = snapshot(b)
    for extra in ([], ["--overwrite"]):
        assert_one_message(invoke("weights", a, "--out", b / "config.csv", *extra), "would replace a file of the run")
        assert_one_message(invoke("weights", a, "--out", b / "files.csv", *extra), "would replace a file of the run")
    assert snapshot(b) == before
    assert invoke("weights", a, "--out", tmp_path / "d.csv", "--overwrite").exit_code == 0
    assert json.loads(mine.read_text())["source_run"] == str(a)


def test_report_never_replaces_a_users_groups_csv(run_copy, tmp_path):
    a = run_copy()
    (tmp_path / "r.groups.csv").write_text("my,table\n")
    assert_one_message(invoke("report", a, "--out", tmp_path / "r.html"), "r.groups.csv already exists")
    assert (tmp_path / "r.groups.csv").read_text() == "my,table\n" and not (tmp_path / "r.html").exists()
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "groups.csv").write_text("model,group\nmine,x\n")  # looks like ours, but no report.json says so
    assert_one_message(invoke("report", a, "--out", folder), "groups.csv already exists")
    assert (folder / "groups.csv").read_text() == "model,group\nmine,x\n"
    assert invoke("report", a, "--out", tmp_path / "r.html", "--overwrite", "--n-boot", "100").exit_code == 0
    again = invoke("report", a, "--out", tmp_path / "r.html", "--n-boot", "100")  # its own earlier report
    assert again.exit_code == 0, again.output
    b = run_copy("B")
    assert invoke("report", b, "--n-boot", "100").exit_code == 0
    assert_one_message(invoke("report", a, "--out", b), "report.html already exists and belongs to the run in")
    assert json.loads((b / "report.json").read_text())["run_dir"] == str(b.resolve()), "B's own report stays"


def test_fit_overwrite_removes_only_what_debias_wrote(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "weights-mine.csv").write_text("sample_id,weight\na,1\n")
    (out / "notes.txt").write_text("mine")
    assert invoke("fit", *TINY, "--out", out, "--overwrite").exit_code == 0  # a folder that was never a run
    assert invoke("weights", out, "--weighting", "uniform").exit_code == 0
    assert (out / "weights-uniform.csv").is_file()
    again = invoke("fit", *TINY, "--out", out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert (out / "weights-mine.csv").read_text() == "sample_id,weight\na,1\n" and (out / "notes.txt").exists()
    assert not (out / "weights-uniform.csv").exists(), "weights made from the replaced run's latents are gone"


def test_fit_overwrite_refuses_to_replace_a_file_debias_did_not_write(tmp_path, run_copy):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}')
    assert_one_message(invoke("fit", *TINY, "--out", out, "--overwrite"), "holds config.json, which no debias command")
    assert (out / "config.json").read_text() == '{"my": "settings"}'
    a = run_copy()
    pd.read_csv(a / "weights.csv").assign(weight=2.0).to_csv(a / "weights.csv", index=False)  # the user's own now
    assert_one_message(invoke("fit", *TINY, "--out", a, "--overwrite"), "holds weights.csv", "changed since")


def test_a_run_folder_from_before_files_json_still_clears_sensibly(run_copy):
    a = run_copy()
    assert invoke("weights", a, "--weighting", "uniform").exit_code == 0
    (a / RECORD).unlink()
    (a / "weights-mine.csv").write_text("sample_id,weight\na,1\n")  # no `debias weights` record beside it
    ours = set(debias_files(a))
    assert {"weights-uniform.csv", "weights-uniform.json", "config.json", "checkpoint.pt"} <= ours
    assert "weights-mine.csv" not in ours
    remove_debias_files(a)
    assert sorted(p.name for p in a.iterdir()) == ["weights-mine.csv"]


def test_a_folder_that_was_never_a_run_is_never_emptied(tmp_path):
    (tmp_path / "weights.csv").write_text("sample_id,weight\na,1\n")
    (tmp_path / RECORD).write_text(json.dumps({"files": {"weights.csv": {}}}))  # not debias's record
    assert debias_files(tmp_path) == [] and remove_debias_files(tmp_path) == []
    assert (tmp_path / "weights.csv").exists()
    crafted = {"written_by": "debias", "files": {"../outside.txt": {"by": "debias fit"}}}
    (tmp_path / "inner").mkdir()
    (tmp_path / "outside.txt").write_text("mine")
    (tmp_path / "inner" / RECORD).write_text(json.dumps(crafted))
    remove_debias_files(tmp_path / "inner")
    assert (tmp_path / "outside.txt").read_text() == "mine", "a record never names a file outside its folder"


def test_report_shows_the_weights_file_it_reads(run_copy):
    a = run_copy()
    assert invoke("report", a, "--n-boot", "100").exit_code == 0
    report = json.loads((a / "report.json").read_text())
    config = json.loads((a / "config.json").read_text())
    assert report["final_weights"]["ess"] == pytest.approx(config["final_weights"]["ess"])
    assert report["weighting_strategy"] == "errors"

    replaced = invoke("weights", a, "--weighting", "joint", "--joint-dims", "2", "--out", a / "weights.csv")
    assert_one_message(replaced, "--overwrite")
    replaced = invoke(
        "weights", a, "--weighting", "joint", "--joint-dims", "2", "--out", a / "weights.csv", "--overwrite"
    )
    assert replaced.exit_code == 0, replaced.output
    assert invoke("report", a, "--n-boot", "100").exit_code == 0
    report = json.loads((a / "report.json").read_text())
    new = pd.read_csv(a / "weights.csv")["weight"].to_numpy()
    expected = weight_summary(torch.tensor(new))
    assert report["final_weights"]["ess"] == pytest.approx(expected["ess"])
    assert report["final_weights"]["max_min_ratio"] == pytest.approx(expected["max_min_ratio"])
    assert report["weighting_strategy"] == "joint" and report["trained_with"] == "errors"
    assert any("rewritten by `debias weights` (joint)" in note for note in report["notes"])
    html = (a / "report.html").read_text()
    assert "Weighting strategy <strong>joint</strong>" in html and "2 principal" in html

    pd.read_csv(a / "weights.csv").assign(weight=1.0).to_csv(a / "weights.csv", index=False)  # changed by hand
    assert invoke("report", a, "--n-boot", "100").exit_code == 0
    report = json.loads((a / "report.json").read_text())
    assert report["final_weights"]["ess"] == pytest.approx(1.0) and report["weighting_strategy"] == "unknown"
    assert any("changed after debias wrote it" in note for note in report["notes"])


def test_every_reader_sees_the_same_checked_files(fitted):
    result = debias.load_run(fitted)
    folder = RunFolder(fitted)
    assert result.predictions()["sample_id"].map(type).eq(str).all()
    assert result.predictions().equals(folder.predictions("test"))
    assert result.weights_frame.equals(folder.weights) and np.array_equal(result.latents, folder.latents)
    assert folder.early_probs.shape == (len(folder.weights),) and folder.checkpoint["complete"]
    with pytest.raises(debias.UserError, match="'test' or 'valid'"):
        result.predictions("train")
    with pytest.raises(debias.UserError, match="'test' or 'valid'"):
        result.table("train")


def test_a_foreign_checkpoint_is_one_message_for_resume_and_a_note_in_the_report(run_copy):
    a = run_copy()
    torch.save([1, 2, 3], a / "checkpoint.pt")
    assert_one_message(invoke("fit", "--resume", a), "is not a debias checkpoint")
    assert invoke("report", a, "--n-boot", "100").exit_code == 0
    notes = json.loads((a / "report.json").read_text())["notes"]
    assert any("could not be rebuilt from checkpoint.pt" in note for note in notes)


# Where a module of the package opens a file of a run folder itself. Only the room reads them;
# the `sampler` model reads weights.csv through debias.weight_files on purpose, as a user's pipeline would.
DIRECT_READS = re.compile(r"\b(np\.load|torch\.load|pd\.read_csv|read_weights_frame|SampleWeights\.load)\(")
READERS = {"run_folder.py", "weight_files.py", "fit/draws.py"}


def test_only_the_room_reads_a_run_folders_files():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name in READERS or name.startswith("data/"):
            continue
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(("#", ">>>")))
        code = re.sub(r'"""(.|\n)*?"""', "", code)  # docstrings show calls, they make none
        found += [f"{name}: {m.group(0)}" for m in DIRECT_READS.finditer(code)]
    assert found == []
