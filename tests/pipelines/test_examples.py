"""The runnable examples in pipelines/ run end to end at tiny size.

One run of each script goes through a subprocess, exactly as a user starts it; the variations call
the script's main() in this process, since each fresh interpreter spends seconds importing torch.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fakes import CELEBA_ATTRIBUTES, fake_celeba_table, make_fake_celeba  # noqa: E402

PIPELINES = Path(__file__).parents[2] / "pipelines"
N_IMAGES = 30


def run_script(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(PIPELINES / name), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"pipeline_{Path(name).stem}", PIPELINES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_ids(n=N_IMAGES):
    files, _, partition = fake_celeba_table(n)
    return [f for f, code in zip(files, partition) if code == 0]


def write_weights(path, ids, weights):
    pd.DataFrame({"sample_id": ids, "weight": weights}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    return make_fake_celeba(tmp_path_factory.mktemp("celeba"), n=N_IMAGES)


def test_torch_script_trains_with_weights_and_reports_test_accuracy(celeba, tmp_path):
    ids = train_ids()
    # shuffled row order: the script must look weights up by id, not by position
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    weights = write_weights(tmp_path / "weights.csv", [ids[i] for i in order], np.linspace(0.5, 1.5, len(ids)))
    result = run_script(
        "train_celeba_torch.py",
        "--root",
        celeba,
        "--target",
        "Blond_Hair",
        "--weights",
        weights,
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"weighted by {weights} ({len(ids)} rows" in result.stdout
    assert "test accuracy" in result.stdout and "worst-group accuracy" in result.stdout
    n_test = int((fake_celeba_table(N_IMAGES)[2] == 2).sum())  # rows marked 2 (test) in list_eval_partition.txt
    assert n_test == 6 and f"({n_test} images)" in result.stdout


def test_torch_script_without_weights_and_with_a_limit(celeba, capsys):
    script = load_script("train_celeba_torch.py")
    code = script.main(["--root", str(celeba), "--epochs", "1", "--image-size", "16", "--limit", "6", "--workers", "0"])
    out = capsys.readouterr().out
    assert code == 0 and "uniform" in out and "test accuracy" in out and "(6 images)" in out


def test_torch_script_dataset_reads_labels_in_official_order(celeba):
    script = load_script("train_celeba_torch.py")
    files, attributes, partition = fake_celeba_table(N_IMAGES)
    test = script.CelebAFolder(celeba, "test", "Blond_Hair", "Male", image_size=16)
    expected = [f for f, code in zip(files, partition) if code == 2]
    assert test.ids == expected
    blond = {f: int(a[CELEBA_ATTRIBUTES.index("Blond_Hair")] == 1) for f, a in zip(files, attributes)}
    assert test.labels == [blond[f] for f in expected]
    image, label, _ = test[0]
    assert image.shape == (3, 16, 16) and 0 <= float(image.min()) <= float(image.max()) <= 1


def test_torch_script_refuses_weights_for_other_ids(celeba, tmp_path, capsys):
    weights = write_weights(tmp_path / "weights.csv", train_ids()[:-2] + ["x.jpg"], np.ones(len(train_ids()) - 1))
    script = load_script("train_celeba_torch.py")
    code = script.main(
        ["--root", str(celeba), "--weights", str(weights), "--epochs", "1", "--image-size", "16", "--workers", "0"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "2 of your" in err and "'x.jpg'" in err


def test_sklearn_script_on_embeddings_with_sample_weight(tmp_path):
    files, attributes, _ = fake_celeba_table(200)
    labels = (attributes[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] == 1).astype(int)
    male = (attributes[:, CELEBA_ATTRIBUTES.index("Male")] == 1).astype(int)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(200, 5)) + labels[:, None]
    np.save(tmp_path / "X.npy", embeddings)
    pd.DataFrame({"sample_id": files, "label": labels, "Male": male}).to_csv(tmp_path / "table.csv", index=False)
    weights = write_weights(tmp_path / "w.csv", files[::-1], rng.uniform(0.5, 1.5, size=200))
    result = run_script(
        "sklearn_embeddings.py",
        "--embeddings",
        "X.npy",
        "--table",
        "table.csv",
        "--weights",
        weights,
        "--group",
        "Male",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "unweighted  test accuracy" in result.stdout and "weighted    test accuracy" in result.stdout
    assert "label=1 Male=0" in result.stdout


def test_sklearn_script_on_a_run_folder_and_mismatched_weights(tmp_path, capsys):
    ids = train_ids(100)
    labels = np.arange(len(ids)) % 2
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "latents.npy", np.random.default_rng(1).normal(size=(len(ids), 3)).astype(np.float32))
    pd.DataFrame({"sample_id": ids, "weight": 1.0, "log_density": 0.0, "label": labels}).to_csv(
        run / "weights.csv", index=False
    )
    script = load_script("sklearn_embeddings.py")
    assert script.main(["--run", str(run)]) == 0
    assert "test accuracy" in capsys.readouterr().out

    other = write_weights(tmp_path / "other.csv", ids[1:], np.ones(len(ids) - 1))
    assert script.main(["--run", str(run), "--weights", str(other)]) == 2
    assert "1 of your 60 ids have no row" in capsys.readouterr().err


def test_sklearn_script_reports_per_group_from_a_run(fitted_run, capsys):
    script = load_script("sklearn_embeddings.py")
    assert script.main(["--run", str(fitted_run), "--group", "Male"]) == 0
    out = capsys.readouterr().out
    for line in ("label=0 Male=0", "label=0 Male=1", "label=1 Male=0", "label=1 Male=1"):
        assert line in out
    assert script.main(["--run", str(fitted_run), "--group", "Young"]) == 2
    assert "its group columns are: Male" in capsys.readouterr().err


def test_torch_script_takes_a_larger_runs_weights_with_allow_extra(celeba, tmp_path, capsys):
    ids = train_ids()
    weights = write_weights(tmp_path / "weights.csv", ids + ["999999.jpg"], np.ones(len(ids) + 1))
    script = load_script("train_celeba_torch.py")
    common = ["--root", str(celeba), "--weights", str(weights), "--epochs", "1", "--image-size", "16", "--workers", "0"]
    assert script.main(common) == 2
    assert "--allow-extra in the pipelines/ scripts" in capsys.readouterr().err
    assert script.main([*common, "--allow-extra"]) == 0
    assert f"weighted by {weights} ({len(ids)} rows" in capsys.readouterr().out


def test_torch_script_hint_when_no_id_matches(celeba, tmp_path, capsys):
    ids = [name.removesuffix(".jpg") for name in train_ids()]  # ids without the extension
    weights = write_weights(tmp_path / "weights.csv", ids, np.ones(len(ids)))
    script = load_script("train_celeba_torch.py")
    args = ["--root", str(celeba), "--weights", str(weights), "--epochs", "1", "--image-size", "16", "--workers", "0"]
    assert script.main([*args, "--allow-extra"]) == 2
    err = capsys.readouterr().err
    assert "No id matches at all" in err and "'000001'" in err and "'000001.jpg'" in err
    assert "allow" not in err  # allowing extra rows would not help
