"""Atomic writes: an interrupted write (exception, Ctrl-C, SIGKILL) leaves the old file whole, never a truncated one."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from debias import io

OLD = "old content\n" * 100
REPO = Path(__file__).resolve().parents[1]


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_mid_write_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "weights.csv"
    target.write_text(OLD)
    with pytest.raises(error):
        with io.atomic_path(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write("sample_id,weight\n" + "a,1.0\n" * 50)  # half of the new content
            raise error
    assert target.read_text() == OLD
    assert temporaries(tmp_path) == []


def test_error_mid_write_of_a_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "config.json"
    with pytest.raises(ZeroDivisionError):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            raise ZeroDivisionError
    assert not target.exists()
    assert temporaries(target.parent) == []


def test_sigkill_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "predictions_test.csv"
    target.write_text(OLD)
    script = textwrap.dedent(f"""
        import os, signal
        from debias import io
        with io.atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write("model,sample_id\\n" + "dbvae,1\\n" * 1000)
                fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()
    assert target.read_text() == OLD
    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].name.startswith(".predictions_test.csv.")  # hidden, never the target
    assert io.remove_stale_temporaries(tmp_path) == left and temporaries(tmp_path) == []


def _frame(n):
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "weight": np.linspace(0.5, 1.5, n)})


# writer, first (long) content, second (short) content, reader, equality
WRITERS = {
    "a.txt": (io.write_text, "first\n" * 200, "x", Path.read_text, str.__eq__),
    "a.json": (io.write_json, {"k": list(range(200))}, {"k": [1, 2]}, lambda p: json.loads(p.read_text()), dict.__eq__),
    "a.csv": (io.write_csv, _frame(200), _frame(2), pd.read_csv, lambda a, b: a.equals(b)),
    "a.npy": (
        io.write_npy,
        np.arange(600, dtype=np.float32).reshape(200, 3),
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.load,
        np.array_equal,
    ),
    "a.pt": (
        io.write_torch,
        {"w": torch.arange(200.0), "n": 200},
        {"w": torch.ones(2), "n": 3},
        lambda p: torch.load(p, weights_only=True),
        lambda a, b: a["n"] == b["n"] and torch.equal(a["w"], b["w"]),
    ),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_writer_replaces_whole_files(tmp_path, name):
    write, first, second, read, same = WRITERS[name]
    target = tmp_path / name
    write(target, first)  # a new file
    assert same(read(target), first)
    old_bytes = target.read_bytes()
    with open(target, "rb") as reader:  # a reader that opened the file before the second write
        write(target, second)
        assert reader.read() == old_bytes  # the old file was swapped out whole, not rewritten in place
    assert same(read(target), second)
    new_bytes = target.read_bytes()
    assert len(new_bytes) < len(old_bytes) and old_bytes[-64:] not in new_bytes  # no tail of the longer old file
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left, hidden or not


def test_new_files_get_the_usual_permissions_and_replaced_files_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        io.write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # not mkstemp's 0600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        io.write_text(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"
    finally:
        os.umask(umask)
