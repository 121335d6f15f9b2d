"""The README's Python blocks run, in order, in one namespace, in a fresh folder.

A block may be marked by an HTML comment on the line before its opening fence (invisible when the
README is rendered):

    <!-- readme-test: skip (why) -->          not run: it needs data the tests do not have (CelebA)
    <!-- readme-test: shrink {"a": "b"} -->    run with each text a replaced by b: a fit at tiny size

Every other block runs as written.
"""

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>\w+)(?P<arg>.*?)-->\n)?```python\n(?P<code>.*?)```", re.S)


def readme_blocks():
    return [(m["mark"], (m["arg"] or "").strip(), m["code"]) for m in BLOCK.finditer(README.read_text())]


def test_the_readme_has_marked_and_unmarked_python_blocks():
    marks = [mark for mark, _, _ in readme_blocks()]
    assert None in marks and "skip" in marks and "shrink" in marks
    assert set(marks) <= {None, "skip", "shrink"}


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = 0
    for mark, arg, code in readme_blocks():
        if mark == "skip":
            assert arg.startswith("(") and arg.endswith(")"), "a skipped block says why"
            continue
        if mark == "shrink":
            for old, new in json.loads(arg).items():
                assert old in code, f"shrink marker replaces {old!r}, which the block does not hold"
                code = code.replace(old, new)
        exec(compile(code, f"README.md block {ran + 1}", "exec"), namespace)
        ran += 1
    assert ran >= 2
    out = capsys.readouterr().out
    assert out.startswith("1.0 ") and "FitResult(" in out
    assert (tmp_path / "runs" / "api" / "weights.csv").is_file()
    assert json.loads((tmp_path / "runs" / "api-seed1" / "config.json").read_text())["settings"]["seed"] == 1


def test_the_readme_test_command_is_what_ci_runs():
    readme_command = README.read_text().splitlines()[4].split("   #")[0].strip()
    ci = (README.parent / ".ci" / "run").read_text().splitlines()[-1].strip()
    assert readme_command == ci
