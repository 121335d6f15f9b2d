"""The Hugging Face Trainer and Lightning examples in pipelines/, run end to end on a tiny model and tiny data.

They need the `integrations` extra (pip install -e ".[dev,integrations]", which .ci/run installs);
without it each test skips and says so.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from debias.weight_files import SampleWeights

PIPELINES = Path(__file__).parents[2] / "pipelines"
N, HEAVY = 100, 10  # rows 0-9 weigh 50 each, the other 90 weigh 1: 500 / 590 = 85% of the draws


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"pipeline_{Path(name).stem}", PIPELINES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_rows(seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(N) % 2
    X = rng.normal(size=(N, 4)) + y[:, None]
    ids = np.array([f"img{i:03d}" for i in range(N)])
    weights = SampleWeights(ids[::-1], np.where(np.arange(N)[::-1] < HEAVY, 50.0, 1.0))  # listed in reverse order
    return X, y, ids, weights


@pytest.fixture
def hf():
    pytest.importorskip(
        "transformers", reason="the integrations extra is not installed: pip install -e '.[integrations]'"
    )
    pytest.importorskip(
        "accelerate", reason="the integrations extra is not installed: pip install -e '.[integrations]'"
    )
    return load_script("hf_trainer.py")


@pytest.fixture
def lightning():
    pytest.importorskip("lightning", reason="the integrations extra is not installed: pip install -e '.[integrations]'")
    return load_script("lightning_module.py")


def test_hf_weighted_trainer_draws_by_the_weights(hf, tmp_path):
    X, y, ids, weights = tiny_rows()
    model = hf.MLP(4)
    trainer = hf.WeightedTrainer(
        model=model,
        args=hf.training_arguments(str(tmp_path), epochs=2, batch_size=10, lr=1e-2, seed=0),
        train_dataset=hf.Rows(X, y),
        sample_weights=weights,
        sample_ids=ids,
    )
    trainer.train()
    seen = np.array(model.seen)
    assert len(seen) == 2 * N  # two epochs of N draws
    assert 0.75 < np.isin(seen, np.arange(HEAVY)).mean() < 0.95  # 85% expected from the weights


def test_hf_sampler_is_shared_by_ddp_processes_without_overlap(hf, tmp_path):
    from accelerate.data_loader import prepare_data_loader

    X, y, ids, weights = tiny_rows()
    trainer = hf.WeightedTrainer(
        model=hf.MLP(4),
        args=hf.training_arguments(str(tmp_path), epochs=1, batch_size=10, lr=1e-2, seed=0),
        train_dataset=hf.Rows(X, y),
        sample_weights=weights,
        sample_ids=ids,
    )
    loader = torch.utils.data.DataLoader(hf.Rows(X, y), batch_size=10, sampler=trainer._get_train_sampler())
    whole = [b["row"].tolist() for b in loader]
    # what accelerate gives each of two processes: every process walks the same seeded sequence
    # of batches and keeps its own, so the two shares are the one draw, split
    shares = []
    for rank in (0, 1):
        sampler = trainer._get_train_sampler()  # each process builds its own, from the same seed
        shard = prepare_data_loader(
            torch.utils.data.DataLoader(hf.Rows(X, y), batch_size=10, sampler=sampler),
            num_processes=2,
            process_index=rank,
            put_on_device=False,
        )
        shares.append([b["row"].tolist() for b in shard])
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2]


def test_hf_script_end_to_end_on_a_run(hf, fitted_run, capsys):
    assert hf.main(["--run", str(fitted_run), "--group", "Male", "--epochs", "1", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "unweighted  worst cell" in out and "weighted    worst cell" in out and "label=1 Male=1" in out


def test_lightning_data_module_draws_by_the_weights(lightning):
    X, y, ids, weights = tiny_rows()
    model = lightning.LitMLP(4, lr=1e-2)
    data = lightning.WeightedDataModule(lightning.rows(X, y), ids, weights, batch_size=10, seed=0)
    args = type("Args", (), {"epochs": 2, "accelerator": "cpu", "devices": 1, "strategy": "auto"})
    lightning.trainer(args).fit(model, datamodule=data)
    seen = np.array(model.seen)
    assert len(seen) == 2 * N
    assert 0.75 < np.isin(seen, np.arange(HEAVY)).mean() < 0.95
    first, second = seen[:N], seen[N:]
    assert not np.array_equal(first, second)  # Lightning called set_epoch: a new draw every epoch


def test_lightning_ranks_take_disjoint_shares_of_one_draw(lightning):
    X, y, ids, weights = tiny_rows()
    data = lightning.WeightedDataModule(lightning.rows(X, y), ids, weights, batch_size=10, seed=3)
    shares = []
    for rank in (0, 1):
        data.trainer = type("FakeTrainer", (), {"global_rank": rank, "world_size": 2})()
        shares.append([int(i) for i in data.train_dataloader().sampler])
    single = weights.to_sampler(ids, seed=3, rank=0, world_size=1)
    whole = [int(i) for i in single]
    assert len(shares[0]) == len(shares[1]) == N // 2
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2]


def test_lightning_script_end_to_end_on_a_run(lightning, fitted_run, capsys):
    code = lightning.main(
        ["--run", str(fitted_run), "--group", "Male", "--epochs", "1", "--batch-size", "8", "--accelerator", "cpu"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "weighted by" in out and "label=0 Male=0" in out
    assert pd.read_csv(fitted_run / "weights.csv")["group_Male"].isin([0, 1]).all()
