"""One process at a time writes a run folder: a second fit, or a resume, while a fit is live gets one message naming it.

The live fit is a real `debias fit` in another process, held inside its first epoch until the
test lets it go, so the refusals are checked while it certainly runs (no timing guesses).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from debias import locks
from debias.cli import main
from debias.run_dir import LOCK

ROOT = Path(__file__).resolve().parents[1]
TINY = "--data synthfaces --limit 48 --epochs 1 --batch-size 16 --latent-dim 4 --image-size 16 --models dbvae --device cpu --quiet --vae-warmup-steps 0".split()
CONTRACT = {
    "weights.csv",
    "config.json",
    "checkpoint.pt",
    "latents.npy",
    "predictions_test.csv",
    "predictions_valid.csv",
    "history.csv",
    "early_probs.npy",  # the default weighting (errors) reads the early classifier's errors
    "files.json",  # the record of what the fit wrote
}
# Runs `debias ARGS...` with its first training epoch held until the file GATE exists; touches STARTED then.
PAUSED_FIT = """
import sys, time
from pathlib import Path
import debias.fit.trainer as trainer

gate, started = Path(sys.argv[1]), Path(sys.argv[2])
real = trainer.train_one_epoch

def held(*args, **kwargs):
    started.touch()
    deadline = time.monotonic() + 300
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(*args, **kwargs)

trainer.train_one_epoch = held
from debias.cli import main
main(sys.argv[3:], prog_name="debias")
"""


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, PYTHONPATH=str(ROOT), DEBIAS_CACHE=str(tmp_path / "cache"))


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def assert_refused_naming(output: str, pid: int) -> None:
    assert "is in use by another debias fit: process" in output, output
    assert f"process {pid} on host {socket.gethostname()} since " in output, output
    assert "Traceback" not in output


def test_a_second_fit_and_a_resume_are_refused_while_a_fit_runs(tmp_path, env, monkeypatch):
    run, gate, started = tmp_path / "run", tmp_path / "gate", tmp_path / "started"
    script = tmp_path / "paused_fit.py"
    script.write_text(PAUSED_FIT)
    first = subprocess.Popen(
        [sys.executable, str(script), str(gate), str(started), "fit", *TINY, "--out", str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(started, first)
        holder = json.loads((run / LOCK).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()

        # A second fit over the same folder, in a process of its own, as a user would start it.
        second = subprocess.run(
            [sys.executable, "-m", "debias", "fit", *TINY, "--out", str(run), "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 1
        assert_refused_naming(second.stderr, first.pid)

        # The same without --overwrite, and --resume, while the fit is still training in the folder.
        monkeypatch.setenv("DEBIAS_CACHE", env["DEBIAS_CACHE"])
        for args in (["fit", *TINY, "--out", str(run)], ["fit", "--resume", str(run), "--quiet"]):
            refused = CliRunner().invoke(main, args)
            assert refused.exit_code == 1
            assert_refused_naming(refused.output, first.pid)
            assert "already exists and is not empty" not in refused.output
        assert (run / "config.json").is_file() and not (run / "checkpoint.pt").exists()  # nothing of theirs written
    finally:
        gate.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "Run folder: " in out
    assert {p.name for p in run.iterdir()} == CONTRACT, "the fit's files only, its lock removed"
    assert json.loads((run / "config.json").read_text())["status"] == "complete"


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    path = tmp_path / "x.lock"
    with locks.acquire(path) as held:
        assert held.held and json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(locks.LockBusy) as busy:
            locks.acquire(path)  # another open file description: refused even in the same process
        assert busy.value.holder["pid"] == os.getpid()
        assert locks.live_holder(path)["host"] == socket.gethostname()
    assert not path.exists() and not held.held
    assert locks.live_holder(path) is None


def test_a_killed_holders_lock_is_taken_over_without_looking_at_its_pid(tmp_path, env):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from debias import locks; locks.acquire(sys.argv[1]); print('held', flush=True); "
            "time.sleep(300)",
            str(path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(locks.LockBusy, match=f"process {holder.pid} on host"):
        locks.acquire(path)
    holder.send_signal(signal.SIGKILL)  # kill -9: no cleanup runs, the lock file stays
    holder.wait()
    assert json.loads(path.read_text())["pid"] == holder.pid
    with locks.acquire(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_lock_file_naming_another_machine_is_stale_when_no_os_lock_holds_it(tmp_path):
    # What a fit on another machine (or in another container, another pid namespace) leaves when
    # it dies: its name in the file, and no OS lock, which died with it.
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": "gpu-node-7", "pid": os.getpid(), "since": "2020-01-01T00:00:00"}))
    assert locks.live_holder(path) is None
    with locks.acquire(path):
        assert json.loads(path.read_text())["host"] == socket.gethostname()


def test_a_waiting_acquirer_gets_the_lock_after_release_and_never_a_removed_file(tmp_path, env):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from debias import locks; lock = locks.acquire(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.readline(); lock.release()",
            str(path),
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    waited = []

    def release_when_told(who):
        waited.append(who["pid"])
        holder.stdin.write("go\n")
        holder.stdin.flush()

    with locks.acquire(path, wait=True, on_wait=release_when_told) as lock:
        assert waited == [holder.pid]
        # The holder removed its file on release; ours is the file at the path now.
        assert json.loads(path.read_text())["pid"] == os.getpid() and lock.held
    assert holder.wait(timeout=60) == 0
