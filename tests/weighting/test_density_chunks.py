"""Chunked histogram density: chunk size never changes the result, which is the float64 formula."""

import math

import numpy as np
import pytest
import torch

from debias.weighting.histogram import COMBINATIONS, histogram_counts, histogram_log_weights


def float64_formula(mu: np.ndarray, bins: int, alpha: float, combine: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension counts [D, bins] and log-weights [N], written plainly in float64."""
    m = mu.astype(np.float64)
    low, high = m.min(0), m.max(0)
    width = np.where(high > low, (high - low) / bins, 1.0)
    idx = np.clip(np.floor((m - low) / width), 0, bins - 1).astype(np.int64)
    counts = np.stack([np.bincount(idx[:, i], minlength=bins) for i in range(m.shape[1])])
    q = counts / len(m) + alpha
    q = q / q.sum(1, keepdims=True)
    with np.errstate(divide="ignore"):
        per_dim = -np.log(np.take_along_axis(q, idx.T, axis=1)).T  # [N, D]
    combined = {"product": per_dim.sum(1), "geometric": per_dim.sum(1) / m.shape[1], "max": per_dim.max(1)}
    return counts, combined[combine]


def float32_bins(mu: np.ndarray, bins: int) -> np.ndarray:
    """The bin indices float32 arithmetic gives (what the formula must not be confused with)."""
    low, high = mu.min(0), mu.max(0)
    width = np.where(high > low, (high - low) / np.float32(bins), np.float32(1))
    return np.clip(np.floor((mu - low) / width), 0, bins - 1).astype(np.int64)


def edge_latents(seed: int = 0) -> np.ndarray:
    """Float32 latents with many values exactly on (or one float away from) bin edges."""
    rng = np.random.default_rng(seed)
    n, d = 3001, 12
    mu = rng.standard_normal((n, d)).astype(np.float32)
    mu[:, 0] = rng.integers(0, 11, n)  # integers, 10 bins of width 1: every value on an edge
    mu[:, 1] = rng.integers(0, 21, n) / 10  # a decimal grid, edges at multiples of 0.2
    mu[:, 2] = rng.integers(-7, 8, n) / 3  # edges at non-representable fractions
    low, high = mu[:, 3].min(), mu[:, 3].max()
    # edge values computed as the float32 and float64 formulas would, and their neighbours
    edges64 = low + (high - low) / 10 * np.arange(1, 10)
    candidates = np.concatenate(
        [
            edges64.astype(np.float32),
            np.nextafter(edges64.astype(np.float32), np.float32(np.inf)),
            np.nextafter(edges64.astype(np.float32), np.float32(-np.inf)),
            (low + (high - low) / np.float32(10) * np.arange(1, 10, dtype=np.float32)),
        ]
    )
    mu[::3, 3] = rng.choice(candidates, len(mu[::3, 3]))
    mu[:, 4] = 3.0  # a constant dimension
    mu[:, 5] = rng.integers(0, 5, n) * np.float32(0.1)  # few distinct values, some bins empty
    return mu


@pytest.mark.parametrize("combine", COMBINATIONS)
def test_chunked_equals_unchunked(combine):
    mu = torch.from_numpy(edge_latents())
    # chunk sizes that divide N or not, one larger than N, and single rows (on fewer rows: slow)
    for rows, chunks in [(len(mu), [7, 64, 1000, 3000, 3001, 5000]), (300, [1, 2, 299])]:
        part = mu[:rows]
        whole_counts = histogram_counts(part, bins=10, chunk_rows=rows)[0]
        whole = histogram_log_weights(part, bins=10, alpha=0.01, combine=combine, chunk_rows=rows)
        for chunk_rows in chunks:
            assert torch.equal(histogram_counts(part, bins=10, chunk_rows=chunk_rows)[0], whole_counts), chunk_rows
            got = histogram_log_weights(part, bins=10, alpha=0.01, combine=combine, chunk_rows=chunk_rows)
            torch.testing.assert_close(got, whole, rtol=0, atol=1e-12, msg=f"chunk_rows={chunk_rows}")


def test_edge_data_is_binned_differently_by_float32_arithmetic():
    # Guards the tests below: on this data float32 arithmetic puts some values in another bin,
    # so agreeing with the float64 formula there is a real check.
    mu = edge_latents()
    m = mu.astype(np.float64)
    low, high = m.min(0), m.max(0)
    width = np.where(high > low, (high - low) / 10, 1.0)
    exact = np.clip(np.floor((m - low) / width), 0, 9)
    assert (float32_bins(mu, 10) != exact).any()


@pytest.mark.parametrize("bins", [2, 3, 10, 16, 64, 100])
@pytest.mark.parametrize("alpha", [0.0, 0.01])
def test_equals_float64_formula_on_edge_values(bins, alpha):
    mu = edge_latents(seed=bins)
    for combine in COMBINATIONS:
        counts, expected = float64_formula(mu, bins, alpha, combine)
        got = histogram_log_weights(torch.from_numpy(mu), bins=bins, alpha=alpha, combine=combine, chunk_rows=333)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(histogram_counts(torch.from_numpy(mu), bins, chunk_rows=333)[0].numpy(), counts)


def test_normalized_weights_equal_float64_formula():
    from debias.weighting import normalize_log_weights

    rng = np.random.default_rng(3)
    mu = rng.standard_normal((5000, 100)).astype(np.float32)
    mu[:, :25] **= 3
    mu[:500] = edge_latents(seed=3)[:500, :1]  # a column of integers: values on edges
    for combine in COMBINATIONS:
        _, expected = float64_formula(mu, 10, 0.01, combine)
        got = histogram_log_weights(torch.from_numpy(mu), bins=10, alpha=0.01, combine=combine)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-9)
        # The weights written plainly: W proportional to exp(log-weight), mean 1 over the rows.
        w_expected = np.exp(expected - expected.max())
        w_expected *= len(w_expected) / w_expected.sum()
        np.testing.assert_allclose(normalize_log_weights(got).numpy(), w_expected, rtol=1e-9, atol=1e-12)


def test_single_sample_and_constant_dimensions():
    mu = torch.tensor([[0.5, -2.0, 7.0]])
    counts, low, width = histogram_counts(mu, bins=4)
    assert counts.tolist() == [[1.0, 0.0, 0.0, 0.0]] * 3
    assert width.tolist() == [1.0, 1.0, 1.0]
    alpha = 0.1
    expected = -math.log((1 + alpha) / (1 + 4 * alpha))
    for combine, value in [("product", 3 * expected), ("geometric", expected), ("max", expected)]:
        got = histogram_log_weights(mu, bins=4, alpha=alpha, combine=combine, chunk_rows=1)
        assert got.tolist() == pytest.approx([value], abs=1e-12)

    # Dimensions 0 and 2 are constant: all 50 rows in bin 0, Q^ = 1.01 / 1.05 (alpha 0.01, 5 bins).
    # Dimension 1 is 0..49: 10 rows per bin, Q^ = 0.21 / 1.05 = 1/5. Every row scores the same.
    constant = torch.full((50, 3), 2.5)
    constant[:, 1] = torch.arange(50.0)
    flat, spread = math.log(1.05 / 1.01), math.log(5.0)
    for combine, value in [("product", 2 * flat + spread), ("geometric", (2 * flat + spread) / 3), ("max", spread)]:
        got = histogram_log_weights(constant, bins=5, alpha=0.01, combine=combine, chunk_rows=7)
        np.testing.assert_allclose(got.numpy(), np.full(50, value), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_latent_dtypes_follow_the_formula_in_float64(dtype):
    mu = torch.from_numpy(edge_latents(seed=5)).to(dtype)
    m = mu.double().numpy()
    for combine in COMBINATIONS:
        _, expected = float64_formula(m, 10, 0.01, combine)
        np.testing.assert_allclose(
            histogram_log_weights(mu, bins=10, combine=combine, chunk_rows=100).numpy(), expected, atol=1e-9
        )


def test_non_finite_latents_are_rejected():
    for bad in (float("nan"), float("inf")):
        mu = torch.zeros(10, 3)
        mu[4, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            histogram_log_weights(mu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_latents_give_the_cpu_result_on_the_device():
    mu = torch.from_numpy(edge_latents(seed=11))
    for combine in COMBINATIONS:
        on_cpu = histogram_log_weights(mu, combine=combine, chunk_rows=500)
        on_cuda = histogram_log_weights(mu.cuda(), combine=combine, chunk_rows=500)
        assert on_cuda.device.type == "cuda"
        torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=0, atol=1e-12)
