"""Several processes (torchrun / DDP) on the CPU with gloo: the same weights as one process, files written once,
and the --compile flag.

The workers are spawned processes; a module-scoped fixture runs each group of them once.
"""

import json
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner

from debias.cli import main
from debias.data import Dataset, ImageSplit, load_dataset
from debias.distributed import SINGLE, DistContext, session, shard
from debias.errors import UserError
from debias.fit import FitConfig, validate
from debias.fit.device import resolve_device
from debias.fit.draws import DensityDraw
from debias.fit.trainer import Trainer
from debias.sampling import rank_share
from debias.weighting import WeightingSettings, training_weights
from debias.weighting.histogram import histogram_log_weights
from debias.weighting.sharded import sharded_training_weights

WORLD = 2
CONTRACT = "weights.csv config.json checkpoint.pt latents.npy predictions_test.csv predictions_valid.csv history.csv files.json".split()
# --eval-batch-size 32 splits the 160 training images into 5 encoding batches: 3 for rank 0, 2 for rank 1.
FIT_ARGS = "fit --data synthfaces --limit 160 --epochs 2 --batch-size 32 --latent-dim 8 --image-size 32 --eval-batch-size 32 --models uniform,dbvae,sampler --device cpu --quiet --vae-warmup-steps 0 --weighting histogram".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(worker, args: tuple, timeout: float = 240.0) -> None:
    """Run worker(rank, *args) in WORLD spawned processes; fail (instead of hanging) after `timeout` seconds."""
    context = mp.start_processes(worker, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):  # raises when a worker raised
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed workers still running after {timeout} s: a collective hangs")


# ---------------------------------------------------------------- weights from latent matrices


def latent_case(n: int, dims: int, seed: int):
    """Latents with values exactly on bin edges, a constant dimension, the extremes in different shards; labels; early probs."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, dims, generator=g, dtype=torch.float32)
    mu[:, 0] = torch.randint(0, 11, (n,), generator=g).float()  # bins of width 1 on [0, 10]: every value on an edge
    mu[0, 0], mu[-1, 0] = 0.0, 10.0  # min on rank 0, max on rank 1
    mu[:, 1] = 0.25  # constant
    mu[: n // 3, 2] = 3.0  # the maximum of dimension 2 lies only in the first shard
    labels = torch.randint(0, 2, (n,), generator=g)
    probs = torch.rand(n, generator=g, dtype=torch.float64).numpy()
    return mu, labels, probs


# name -> (rows, dims, settings, vae_on_all, align): align > rows leaves rank 1 without rows.
WEIGHT_CASES = {
    "histogram-max-all": (203, 6, WeightingSettings(strategy="histogram", combine="max"), True, 1),
    "histogram-geometric-positives-cap": (
        203,
        6,
        WeightingSettings(strategy="histogram", combine="geometric", cap=2.0),
        False,
        1,
    ),
    "histogram-product-alpha0": (
        203,
        6,
        WeightingSettings(strategy="histogram", combine="product", alpha=0.0, bins=7),
        True,
        1,
    ),
    "histogram-rank1-empty": (101, 6, WeightingSettings(strategy="histogram", combine="geometric"), False, 1000),
    "histogram-class-shares-cap": (
        203,
        6,
        WeightingSettings(strategy="histogram", keep_class_shares=True, cap=3.0),
        True,
        1,
    ),
    # 22,000 x 100 latents: several chunks per shard, and shard boundaries that are not chunk boundaries.
    "histogram-large": (22_000, 100, WeightingSettings(strategy="histogram", combine="product"), True, 1),
    "joint-positives": (203, 6, WeightingSettings(strategy="joint", joint_dims=2, joint_components=2), False, 1),
    "errors+latent": (203, 6, WeightingSettings(strategy="errors+latent"), True, 1),
}


def tiny_dataset(n: int = 96, size: int = 32, vae_on_all: bool = True) -> Dataset:
    rng = np.random.default_rng(0)

    def split(name: str) -> ImageSplit:
        images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        labels = (np.arange(n) % 2).astype(np.int64)
        return ImageSplit(images, labels, np.array([f"{name}{i}" for i in range(n)]), pd.DataFrame({"g": labels}))

    return Dataset("tiny", split("train"), split("valid"), split("test"), ["g"], vae_on_all=vae_on_all, target="label")


MODEL_CONFIG = FitConfig(
    latent_dim=8,
    image_size=32,
    eval_batch_size=16,
    weighting=WeightingSettings(strategy="histogram", combine="geometric"),
)


def _weights_worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        with session() as ctx:  # the group initialized above, left to us to destroy
            assert (ctx.rank, ctx.world_size) == (rank, WORLD)
            results = {}
            for name, (n, dims, settings, vae_on_all, align) in WEIGHT_CASES.items():
                mu, labels, probs = latent_case(n, dims, seed=len(name))
                rows = ctx.shard(n, align=align)
                weights, score, _ = sharded_training_weights(mu[rows], labels, rows, settings, vae_on_all, ctx, probs)
                results[name] = (weights, score)
            draw = DensityDraw("dbvae", tiny_dataset(), MODEL_CONFIG, torch.device("cpu"), ctx)
            Trainer(draw)
            draw.refresh()
            results["model"] = (draw.weights, draw.log_density, draw.latents)
            for name, settings in EPOCH_REFRESHES.items():
                results[name] = epoch_refresh(settings, ctx)
            torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# An epoch's refresh in face detection: the histogram encodes the positives only, errors nothing.
EPOCH_REFRESHES = {
    "epoch-histogram": WeightingSettings(strategy="histogram", combine="geometric"),
    "epoch-errors": WeightingSettings(strategy="errors"),
}


def epoch_refresh(settings: WeightingSettings, ctx: DistContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, log_density) of an epoch's refresh of the seeded model on face-detection data."""
    data = tiny_dataset(vae_on_all=False)
    draw = DensityDraw("dbvae", data, replace(MODEL_CONFIG, weighting=settings), torch.device("cpu"), ctx)
    Trainer(draw)
    draw.early_probs = np.linspace(0.05, 0.95, len(data.train))
    draw.refresh(keep_latents=False)
    return draw.weights, draw.log_density


@pytest.fixture(scope="module")
def weight_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    _run_ranks(_weights_worker, (str(folder / "init"), str(folder)))
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(WEIGHT_CASES))
def test_distributed_weights_equal_one_process_exactly(weight_ranks, name):
    n, dims, settings, vae_on_all, _ = WEIGHT_CASES[name]
    mu, labels, probs = latent_case(n, dims, seed=len(name))
    weights, score = training_weights(mu, labels, settings, vae_on_all, probs)
    for rank, results in enumerate(weight_ranks):
        got_weights, got_score = results[name]
        assert torch.equal(got_weights, weights), (name, rank)
        assert torch.equal(torch.isnan(got_score), torch.isnan(score)), (name, rank)
        assert torch.equal(got_score.nan_to_num(), score.nan_to_num()), (name, rank)
    if settings.strategy == "histogram" and vae_on_all:
        raw = histogram_log_weights(mu, bins=settings.bins, alpha=settings.alpha, combine=settings.combine)
        assert torch.equal(weight_ranks[0][name][1], raw)


def test_distributed_refresh_of_a_model_equals_one_process_exactly(weight_ranks):
    draw = DensityDraw("dbvae", tiny_dataset(), MODEL_CONFIG, torch.device("cpu"), SINGLE)
    Trainer(draw)
    draw.refresh()
    for results in weight_ranks:
        weights, log_density, latents = results["model"]
        assert torch.equal(weights, draw.weights)
        assert torch.equal(log_density, draw.log_density)
        assert torch.equal(latents, draw.latents)
    assert draw.weights.std() > 0  # the comparison is not between two constant vectors


@pytest.mark.parametrize("name", list(EPOCH_REFRESHES))
def test_distributed_epoch_refresh_equals_one_process_exactly(weight_ranks, name):
    weights, log_density = epoch_refresh(EPOCH_REFRESHES[name], SINGLE)
    for results in weight_ranks:
        assert torch.equal(results[name][0], weights)
        assert torch.equal(results[name][1].nan_to_num(), log_density.nan_to_num())
    assert weights.std() > 0


def test_shards_restore_the_order_and_rank_shares_split_one_draw():
    for n, align in [(0, 1), (7, 1), (10, 3), (5, 16), (161, 32)]:
        parts = [shard(n, r, 3, align) for r in range(3)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert all(p.start % align == 0 for p in parts if p.stop > p.start)
    draw = torch.arange(11)
    shares = [rank_share(draw, r, 2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 6  # padded to a multiple of the world size
    assert sorted(torch.cat(shares).tolist()) == sorted(list(range(11)) + [0])
    # a step of 4 per rank together covers the single process's step of 8 draws
    assert sorted(torch.cat([s[:4] for s in shares]).tolist()) == list(range(8))
    assert torch.equal(rank_share(draw, 0, 1), draw)


def test_single_context_collectives_are_identities():
    t = torch.arange(5.0)
    assert SINGLE.all_gather_rows(t) is t and SINGLE.all_reduce(t, "max") is t
    assert SINGLE.shard(9) == slice(0, 9) and SINGLE.is_main and not SINGLE.distributed
    assert SINGLE.check(lambda: 3) == 3 and SINGLE.on_main(lambda: 4) == 4


# ---------------------------------------------------------------- a whole fit over two processes


def _fit_worker(rank: int, port: int, out: str, logs: str) -> None:
    """One rank of `torchrun --nproc_per_node 2 -m debias fit ...`, recording what it writes and prints."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    logs = Path(logs)
    os.chdir(logs)  # a stray default run folder (runs/...) would appear here
    import debias.io

    written = []
    for fname in ("write_json", "write_csv", "write_npy", "write_torch", "write_text"):
        real = getattr(debias.io, fname)

        def record(target, *args, _real=real, **kwargs):
            written.append(str(target))
            return _real(target, *args, **kwargs)

        setattr(debias.io, fname, record)
    first = {}
    real_refresh = debias.fit.draws.DensityDraw.refresh

    def refresh(self, *args, **kwargs):
        stats = real_refresh(self, *args, **kwargs)
        first.setdefault("weights", self.weights.clone())
        return stats

    debias.fit.draws.DensityDraw.refresh = refresh
    stdout = open(logs / f"stdout{rank}.txt", "w")
    sys.stdout = stdout
    try:
        main([*FIT_ARGS, "--out", out], standalone_mode=False)
    finally:
        sys.stdout = sys.__stdout__
        stdout.close()
    (logs / f"written{rank}.json").write_text(json.dumps(written))
    torch.save(first["weights"], logs / f"first{rank}.pt")


@pytest.fixture(scope="module")
def distributed_fit(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ranks")
    out = logs / "run"
    _run_ranks(_fit_worker, (_free_port(), str(out), str(logs)))
    return out, logs


def test_two_process_fit_writes_the_contract_once_from_rank_0(distributed_fit):
    out, logs = distributed_fit
    assert sorted(p.name for p in out.iterdir()) == sorted(CONTRACT), "exactly the contract, no temporaries"
    assert [p.name for p in logs.iterdir() if p.is_dir()] == ["run"], "no second run folder"
    assert json.loads((logs / "written1.json").read_text()) == [], "rank 1 writes nothing"
    assert {Path(p).name for p in json.loads((logs / "written0.json").read_text())} == set(CONTRACT)
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and config["settings"]["batch_size"] == 32 and config["processes"] == WORLD
    n_train = config["dataset"]["sizes"]["train"]
    weights = pd.read_csv(out / "weights.csv")
    assert len(weights) == n_train and weights["sample_id"].is_unique
    assert np.isfinite(weights["weight"]).all() and (weights["weight"] > 0).all()
    assert weights["weight"].mean() == pytest.approx(1.0)
    assert np.load(out / "latents.npy").shape == (n_train, 8)
    preds = pd.read_csv(out / "predictions_test.csv")
    assert (preds.groupby("model").size() == config["dataset"]["sizes"]["test"]).all()
    assert set(preds["model"]) == {"uniform", "dbvae", "sampler"}
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 3 * 2 and np.isfinite(history["train_total"]).all()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["complete"] and not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["models"]["dbvae"])
    # only rank 0 prints the summary
    assert "Run folder" in (logs / "stdout0.txt").read_text()
    assert (logs / "stdout1.txt").read_text() == ""


def test_two_process_fit_draws_its_first_epoch_by_the_single_process_weights(distributed_fit):
    """Before any training both fits hold the same seeded DB-VAE, so the first weights are the same bits.
    Later epochs may differ: gradients are averaged over the ranks in another floating-point order
    and batch norm sees each rank's half of the batch."""
    _, logs = distributed_fit
    config = FitConfig(
        data="synthfaces",
        data_options={"limit": 160},
        epochs=2,
        batch_size=32,
        latent_dim=8,
        image_size=32,
        eval_batch_size=32,
        vae_warmup_steps=0,
        weighting=WeightingSettings(strategy="histogram"),
    )
    dataset = load_dataset("synthfaces", image_size=32, limit=160)
    torch.manual_seed(0)
    draw = DensityDraw("dbvae", dataset, config, torch.device("cpu"), SINGLE)
    Trainer(draw)
    draw.refresh()
    for rank in range(WORLD):
        assert torch.equal(torch.load(logs / f"first{rank}.pt", weights_only=True), draw.weights), rank


# ---------------------------------------------------------------- settings checked before training


def test_batch_size_must_split_over_the_processes():
    config = FitConfig(batch_size=30)
    validate(config, world_size=2)
    with pytest.raises(UserError, match="multiple of 4"):
        validate(config, world_size=4)
    with pytest.raises(UserError, match="at least 2 per process"):
        validate(FitConfig(batch_size=4), world_size=4)
    ctx = DistContext(rank=1, world_size=2, local_rank=1)
    assert resolve_device("cpu", ctx) == torch.device("cpu")
    with pytest.raises(UserError, match="LOCAL_RANK"):
        resolve_device("cuda:1", ctx)


# ---------------------------------------------------------------- --compile

TINY_COMPILE = "fit --data synthfaces --limit 64 --epochs 1 --batch-size 32 --latent-dim 8 --image-size 32 --models dbvae --device cpu --quiet --compile --vae-warmup-steps 0 --weighting histogram".split()


@pytest.fixture
def fresh_dynamo():
    """No compiled code of another test's backend before, none left after."""
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.usefixtures("fresh_dynamo")
def test_compile_flag_trains_the_compiled_model_and_saves_the_plain_one(tmp_path, monkeypatch):
    """A real torch.compile with the eager backend: dynamo traces the training steps without needing a
    C++ compiler or the half minute inductor takes here (`debias fit --compile` itself ran: 40 s)."""
    compiled = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    result = CliRunner().invoke(main, [*TINY_COMPILE, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert [type(m).__name__ for m in compiled] == ["DBVAE"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (
        config["runtime"]["compile"] is True and "compile" not in config["settings"]
    )  # how it ran, not what it trained
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["models"]["dbvae"]
    assert not any(key.startswith("_orig_mod.") for key in state)
    from debias.models import DBVAE

    DBVAE(latent_dim=8, image_size=32).load_state_dict(state)  # loads in a run without --compile
    assert FitConfig().compile is False


@pytest.mark.usefixtures("fresh_dynamo")
def test_compile_failure_is_one_message(tmp_path, monkeypatch):
    """What a machine without a C++ compiler meets: the backend fails at the first training step."""
    real_compile = torch.compile

    def no_compiler(gm, example_inputs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real_compile(model, backend=no_compiler))
    result = CliRunner().invoke(main, [*TINY_COMPILE, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert "--compile" in result.output and "C++ compiler" in result.output and "without --compile" in result.output
    assert "Traceback" not in result.output
