import torch

from debias.sampling import epoch_generator, uniform_indices, weighted_indices


def test_sampler_draws_rare_samples_more_often():
    weights = torch.ones(1000, dtype=torch.float64)
    weights[:10] = 20.0  # 10 rare rows with 20x the weight
    idx = weighted_indices(weights, 200_000, epoch_generator(0, 1))
    counts = torch.bincount(idx, minlength=1000).double()
    rare, common = counts[:10].mean(), counts[10:].mean()
    assert 15 < (rare / common).item() < 25


def test_draws_are_reproducible_per_seed_and_epoch():
    w = torch.rand(100, dtype=torch.float64)
    a = weighted_indices(w, 50, epoch_generator(3, 2))
    b = weighted_indices(w, 50, epoch_generator(3, 2))
    c = weighted_indices(w, 50, epoch_generator(3, 3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(uniform_indices(20, epoch_generator(0, 1)).tolist()) == list(range(20))


def test_bad_weights_are_refused():
    import pytest

    for bad in [torch.tensor([1.0, float("nan")]), torch.tensor([-1.0, 2.0]), torch.zeros(3)]:
        with pytest.raises(ValueError):
            weighted_indices(bad, 5, epoch_generator(0, 0))
