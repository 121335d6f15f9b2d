"""debias.weight_files: reading and checking weights.csv, aligning to a pipeline's ids, samplers, sample_weight."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from debias.errors import UserError
from debias.weight_files import (
    DistributedWeightedSampler,
    SampleWeights,
    group_columns,
    load_weights,
    to_sample_weight,
    to_sampler,
    write_weights,
)

N = 40
IDS = [f"{i + 1:06d}.jpg" for i in range(N)]


def weights_for(ids):
    """A distinct weight per id (mean 1), so a misaligned row is visible."""
    w = np.arange(1, len(ids) + 1, dtype=np.float64)
    return w / w.mean()


@pytest.fixture
def weights_csv(tmp_path):
    path = tmp_path / "weights.csv"
    pd.DataFrame({"sample_id": IDS, "weight": weights_for(IDS), "log_density": 0.0, "label": 1}).to_csv(
        path, index=False
    )
    return path


def write_raw(tmp_path, text, name="w.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- loading and checking ---------------------------------------------------------------------


def test_load_reads_ids_as_text_and_weights(weights_csv):
    weights = SampleWeights.load(weights_csv)
    assert len(weights) == N and list(weights.sample_ids) == IDS
    np.testing.assert_allclose(weights.weights, weights_for(IDS))
    assert load_weights(weights_csv).sample_ids.tolist() == IDS


def test_ids_that_look_like_numbers_stay_text(tmp_path):
    path = write_raw(tmp_path, "sample_id,weight\n007,1.0\nNA,1.0\n7,1.0\n")
    assert SampleWeights.load(path).sample_ids.tolist() == ["007", "NA", "7"]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("sample_id,w\na,1\nb,2\n", ["no column 'weight'", "2 rows"]),
        ("id,weight\na,1\n", ["no column 'sample_id'", "1 rows"]),
        ("sample_id,weight\na,1\nb,nan\nc,\n", ["2 of 3 rows", "missing (NaN) weight", "'b'"]),
        ("sample_id,weight\na,1\nb,-2\nc,0\n", ["2 of 3 rows", "weight <= 0", "'b'"]),
        ("sample_id,weight\na,1\nb,inf\n", ["1 of 2 rows", "infinite weight", "'b'"]),
        ("sample_id,weight\na,1\nb,heavy\n", ["1 of 2 rows", "not a number", "'b'", "heavy"]),
        ("sample_id,weight\na,1\nb,1\na,2\n", ["1 sample ids appear more than once", "'a'"]),
        ("sample_id,weight\n", ["no rows"]),
        ("", ["cannot read"]),
    ],
    ids=["no-weight", "no-id", "nan", "not-positive", "inf", "text", "duplicate", "header-only", "empty"],
)
def test_bad_files_give_one_clear_message(tmp_path, body, expected):
    path = write_raw(tmp_path, body)
    with pytest.raises(UserError) as info:
        SampleWeights.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        SampleWeights.load(tmp_path / "nope.csv")


# --- alignment ----------------------------------------------------------------------------------


def test_align_gives_each_id_its_own_weight_whatever_the_order(weights_csv):
    weights = SampleWeights.load(weights_csv)
    expected = dict(zip(IDS, weights_for(IDS)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        shuffled = list(rng.permutation(IDS))
        aligned = weights.align(shuffled)
        assert aligned == pytest.approx([expected[i] for i in shuffled])
        assert to_sample_weight(weights_csv, shuffled) == pytest.approx(aligned)


def test_align_accepts_pandas_and_numpy_ids(weights_csv):
    weights = SampleWeights.load(weights_csv)
    reversed_ids = IDS[::-1]
    for ids in (pd.Series(reversed_ids), np.array(reversed_ids), pd.Index(reversed_ids)):
        assert weights.align(ids) == pytest.approx(weights_for(IDS)[::-1])


def test_integer_ids_match_their_text(tmp_path):
    path = tmp_path / "w.csv"
    write_weights(path, [10, 20, 30], [0.5, 1.0, 1.5])
    assert SampleWeights.load(path).align([30, 10, 20]) == pytest.approx([1.5, 0.5, 1.0])


def test_missing_and_extra_ids_are_counted_with_examples(weights_csv):
    weights = SampleWeights.load(weights_csv)
    ids = IDS[5:] + ["999998.jpg", "999999.jpg"]  # 5 rows unused, 2 ids unknown
    with pytest.raises(UserError) as info:
        weights.align(ids)
    message = str(info.value)
    assert "2 of your 37 ids have no row" in message and "'999998.jpg'" in message
    assert f"5 of its {N} rows are not in your dataset" in message and "'000001.jpg'" in message
    assert str(weights_csv) in message


def test_no_overlap_at_all_shows_both_id_styles(weights_csv):
    with pytest.raises(UserError) as info:
        SampleWeights.load(weights_csv).align(range(N))
    message = str(info.value)
    assert f"{N} of your {N} ids have no row" in message
    assert "No id matches at all" in message and "'000001.jpg'" in message and "'0'" in message
    # ids that match nothing are not a larger run's file: allowing extra rows would not help
    assert "allow" not in message


def test_a_subset_is_pointed_to_allow_extra(weights_csv):
    with pytest.raises(UserError) as info:
        SampleWeights.load(weights_csv).align(IDS[:30])
    assert "allow_extra=True; --allow-extra in the pipelines/ scripts" in str(info.value)


def test_aligned_weights_always_have_mean_one(tmp_path):
    # user weights 1, 2, 3, 4 (mean 2.5): all ids -> 0.4, 0.8, 1.2, 1.6; ids 1-2 -> 2/3, 4/3
    ids = ["a", "b", "c", "d"]
    weights = SampleWeights(ids, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(weights.align(["d", "a", "b", "c"]), [1.6, 0.4, 0.8, 1.2], rtol=1e-12)
    np.testing.assert_allclose(weights.align(["a", "b"], allow_extra=True), [2 / 3, 4 / 3], rtol=1e-12)
    assert weights.weights.tolist() == [1.0, 2.0, 3.0, 4.0]  # the values as given stay readable


def test_duplicate_ids_in_the_dataset_are_refused(weights_csv):
    with pytest.raises(UserError, match="1 sample ids more than once"):
        SampleWeights.load(weights_csv).align(IDS + IDS[:1])


def test_allow_extra_drops_unused_rows_and_rescales_to_mean_one(weights_csv):
    weights = SampleWeights.load(weights_csv)
    subset = IDS[:10]
    w = weights.align(subset, allow_extra=True)
    assert w.mean() == pytest.approx(1.0)
    # the first ten rows hold weights proportional to 1..10 (mean 5.5): rescaled, 1/5.5 .. 10/5.5
    assert w == pytest.approx([i / 5.5 for i in range(1, 11)])
    with pytest.raises(UserError, match="have no row"):
        weights.align(subset + ["unknown"], allow_extra=True)


def test_to_sample_weight_follows_the_given_order(weights_csv):
    order = [3, 0, 39, 17]
    w = SampleWeights.load(weights_csv).to_sample_weight([IDS[i] for i in order], allow_extra=True)
    assert isinstance(w, np.ndarray) and w.dtype == np.float64
    # rows 3, 0, 39, 17 hold weights proportional to 4, 1, 40, 18 (sum 63): at mean 1, 16/63, 4/63, 160/63, 72/63
    assert w == pytest.approx([16 / 63, 4 / 63, 160 / 63, 72 / 63])


def test_write_weights_round_trips_and_refuses_bad_rows(tmp_path):
    path = write_weights(
        tmp_path / "out.csv", ["b", "a"], [2.0, 0.5], log_density=[-1.0, -2.0], labels=[1, 0], groups={"Male": [0, 1]}
    )
    frame = pd.read_csv(path)
    assert frame.columns.tolist() == ["sample_id", "weight", "log_density", "label", "group_Male"]
    assert group_columns(frame).to_dict("list") == {"Male": [0, 1]}
    loaded = SampleWeights.load(path)
    assert loaded.weights.tolist() == [2.0, 0.5]
    assert loaded.align(["a", "b"]) == pytest.approx([0.4, 1.6])  # mean 1.25 as written, 1 once aligned
    with pytest.raises(UserError, match="weight <= 0"):
        write_weights(tmp_path / "bad.csv", ["a"], [0.0])
    assert not (tmp_path / "bad.csv").exists()


# --- samplers -----------------------------------------------------------------------------------


def test_sampler_draws_positions_in_the_users_order_by_weight(tmp_path):
    # weight 10 for "rare", 1 for the others; the user's dataset lists "rare" at position 7
    ids = [f"s{i}" for i in range(20)]
    path = tmp_path / "w.csv"
    write_weights(path, ids, [10.0 if i == "s3" else 1.0 for i in ids])
    user_order = ids[::-1][:7] + ["s3"] + [i for i in ids[::-1][7:] if i != "s3"]
    assert user_order.index("s3") == 7 and sorted(user_order) == sorted(ids)
    sampler = to_sampler(path, user_order, num_samples=58_000, seed=1)
    assert isinstance(sampler, WeightedRandomSampler) and sampler.replacement and len(sampler) == 58_000
    counts = np.bincount(list(sampler), minlength=20)
    # expected share of position 7: 10 / 29 of the draws; of every other position 1 / 29
    assert counts[7] / counts.sum() == pytest.approx(10 / 29, abs=0.01)
    others = np.delete(counts, 7)
    assert others.min() > 1500 and others.max() < 2500


def test_sampler_length_defaults_to_dataset_size_and_is_seeded(weights_csv):
    weights = SampleWeights.load(weights_csv)
    assert len(weights.to_sampler(IDS)) == N
    assert len(weights.to_sampler(IDS, num_samples=7)) == 7
    a, b = list(weights.to_sampler(IDS, seed=5)), list(weights.to_sampler(IDS, seed=5))
    assert a == b and a != list(weights.to_sampler(IDS, seed=6))
    with pytest.raises(UserError, match="num_samples"):
        weights.to_sampler(IDS, num_samples=0)


def test_per_rank_samplers_partition_one_global_draw(weights_csv):
    weights = SampleWeights.load(weights_csv)
    world = 3
    samplers = [weights.to_sampler(IDS, num_samples=100, seed=4, rank=r, world_size=world) for r in range(world)]
    assert all(isinstance(s, DistributedWeightedSampler) for s in samplers)
    assert [len(s) for s in samplers] == [34, 34, 34]  # ceil(100 / 3): every rank takes as many steps
    shares = [list(s) for s in samplers]
    global_draw = samplers[0].global_indices().tolist()
    assert len(global_draw) == 102
    for rank, share in enumerate(shares):
        assert share == global_draw[rank::world]
    interleaved = [shares[i % world][i // world] for i in range(102)]
    assert interleaved == global_draw

    for s in samplers:
        s.set_epoch(1)
    next_epoch = [list(s) for s in samplers]
    assert next_epoch != shares
    assert next_epoch[0] == samplers[0].global_indices()[0::world].tolist()


def test_distributed_draw_follows_the_weights():
    w = np.ones(50)
    w[10] = 25.0  # expected share 25 / 74
    sampler = DistributedWeightedSampler(w, num_samples=40_000, num_replicas=2, rank=1, seed=0)
    counts = np.bincount(list(sampler), minlength=50)
    assert counts[10] / counts.sum() == pytest.approx(25 / 74, abs=0.015)


def test_drop_last_and_bad_ranks():
    assert len(DistributedWeightedSampler(np.ones(10), num_samples=10, num_replicas=4, rank=0, drop_last=True)) == 2
    with pytest.raises(UserError, match="rank"):
        DistributedWeightedSampler(np.ones(10), num_replicas=2, rank=2)
    with pytest.raises(UserError, match="both rank and world_size"):
        SampleWeights(["a", "b"], [1.0, 1.0]).to_sampler(["a", "b"], rank=0)
    with pytest.raises(UserError, match="torch.distributed"):
        DistributedWeightedSampler(np.ones(10))


def test_sampler_works_in_a_dataloader(weights_csv):
    weights = SampleWeights.load(weights_csv)
    dataset = torch.utils.data.TensorDataset(torch.arange(N))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=weights.to_sampler(IDS, seed=0))
    batches = [b[0] for b in loader]
    assert sum(len(b) for b in batches) == N and all(0 <= int(x) < N for b in batches for x in b)
