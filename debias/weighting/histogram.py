"""The paper's density estimate: per-dimension histograms of the latent means.

For latent dimension i, Q_i is the histogram of mu_i over the training samples (fraction of
samples per bin, bins of equal width between that dimension's min and max). Smoothed and
renormalized, Q^_i = (Q_i + alpha) / sum_bins(Q_i + alpha). A sample's per-dimension score is
s_i = -log Q^_i(mu_i); the dimensions are combined into one log-weight by

- product   (the paper):        sum_i s_i            -> W = prod_i 1 / Q^_i
- geometric (product ** 1/D):    mean_i s_i
- max       (the public lab):    max_i s_i            -> only the rarest dimension counts

alpha -> 0 makes W uniform over latent space; alpha -> inf makes it uniform over samples.
Everything is computed in log space (a product of 100 numbers below 1 underflows float32).

Sample x is in bin clip(floor((x - low) / width), 0, bins - 1) with low and width in float64,
computed in float64 chunk by chunk, so memory stays at O(chunk x D) on top of the latents.
Float32 arithmetic would be cheaper but moves samples that sit on a bin edge into the
neighbouring bin: a 1e-2 error in their geometric log-weight at 100 dimensions. An earlier
version was about 3x faster at 1,000,000 x 100 (0.3 s against 0.9 s, one thread) through float
bit tricks and packed codes; but the weight refresh first encodes the images, about 340 s per
million on the same CPU, so it saved under 0.2% of the refresh and was removed (BENCHMARKS.md,
"Density at scale").

Three passes over the latents: min/max (`latent_range`), bins and counts (`bin_latents`), scores
from the counts (`score_bins`). They are public one at a time for rows spread over processes
(debias.weighting.sharded): each process bins its rows on the range reduced over all of them,
the integer counts are summed, and every row gets exactly the score `histogram_log_weights`
gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from debias.weighting.settings import COMBINATIONS

if TYPE_CHECKING:
    from debias.weighting.compute import WeightingInputs
    from debias.weighting.settings import WeightingSettings
# 4096 rows x 100 dimensions: a 3.3 MB float64 chunk buffer, which stays in this CPU's caches;
# much smaller chunks pay more per-op overhead (and, with two threads, more OpenMP starts).
DEFAULT_CHUNK_ROWS = 4096


def _check_latents(mu: torch.Tensor, chunk_rows: int) -> None:
    if mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"latents must be a non-empty [N, D] matrix, got shape {tuple(mu.shape)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")


def latent_range(mu: torch.Tensor, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension minimum and maximum [D] of latents mu [N, D], in mu's dtype: the histograms' range.

    The range of several row blocks is the element-wise min / max of theirs, exactly (see bin_latents).
    """
    _check_latents(mu, chunk_rows)
    # Element-wise minimum/maximum into a chunk-sized accumulator, reduced over rows once at the
    # end: amin(dim=0) over the whole [N, D] matrix is several times slower on CPU (a strided
    # reduction over 100 short columns).
    first = mu[:chunk_rows]
    low, high = first.clone(), first.clone()
    for start in range(chunk_rows, len(mu), chunk_rows):
        chunk = mu[start : start + chunk_rows]
        torch.minimum(low[: len(chunk)], chunk, out=low[: len(chunk)])
        torch.maximum(high[: len(chunk)], chunk, out=high[: len(chunk)])
    return low.amin(dim=0), high.amax(dim=0)


class _Binner:
    """Puts chunks of latent rows in their bins, in float64, in buffers reused from chunk to chunk
    (a fresh chunk-sized tensor per chunk would be page-faulted in again every time)."""

    def __init__(self, low: torch.Tensor, width: torch.Tensor, bins: int, rows: int):
        self.low, self.width, self.bins = low, width, bins
        n_dims, device = len(low), low.device
        self.scaled = torch.empty(rows, n_dims, dtype=torch.float64, device=device)
        self.flat = torch.empty(rows, n_dims, dtype=torch.int64, device=device)
        self.offsets = torch.arange(0, n_dims * bins, bins, device=device)

    def places(self, chunk: torch.Tensor) -> torch.Tensor:
        """int64 [n, D]: i * bins + clip(floor((x - low) / width), 0, bins - 1) for each value x of
        dimension i, its place in the flattened [D, bins] counts and scores."""
        q = self.scaled[: len(chunk)]
        q.copy_(chunk).sub_(self.low).div_(self.width).floor_().clamp_(0, self.bins - 1)
        return self.flat[: len(chunk)].copy_(q).add_(self.offsets)


@dataclass(frozen=True)
class BinnedLatents:
    """Latent rows and their histogram bins (made by `bin_latents`): what counting and scoring share.

    latents: the rows [N, D] (not copied: scoring reads them again, so they must not change in
    between); low, width: the bin geometry [D] (float64); own_counts: these rows' per-dimension counts
    [D, bins] (int64); total_rows: the training rows that `score_bins`' counts cover.
    """

    latents: torch.Tensor
    low: torch.Tensor
    width: torch.Tensor
    own_counts: torch.Tensor
    total_rows: int

    def counts(self) -> torch.Tensor:
        """Per-dimension bin counts [D, bins] (int64) of these rows."""
        return self.own_counts


def bin_latents(
    mu: torch.Tensor,
    bins: int = 10,
    value_range: tuple[torch.Tensor, torch.Tensor] | None = None,
    total_rows: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> BinnedLatents:
    """Bin latent means mu [N, D] and count them, for `score_bins`.

    Alone, mu is the whole training matrix. For one block of its rows (a process's shard), pass
    `value_range`: the (min, max) of `latent_range` over every block, which must contain every value
    of mu, and `total_rows`: the rows of every block. Then the bins are those of the whole matrix,
    and the blocks' counts sum exactly to the whole matrix's counts.
    """
    _check_latents(mu, chunk_rows)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    n_rows, n_dims = mu.shape
    if value_range is None:
        low_x, high_x = latent_range(mu, chunk_rows)
    else:
        low_x, high_x = value_range
        if low_x.shape != (n_dims,) or high_x.shape != (n_dims,) or low_x.dtype != mu.dtype or high_x.dtype != mu.dtype:
            raise ValueError(f"value_range must be two [{n_dims}] tensors of the latents' dtype {mu.dtype}")
        low_x, high_x = low_x.to(mu.device), high_x.to(mu.device)
    if not bool(torch.isfinite(low_x).all() & torch.isfinite(high_x).all()):
        raise ValueError("latents contain NaN or infinite values")
    low, high = low_x.to(torch.float64), high_x.to(torch.float64)
    # A constant dimension gets width 1 so every sample lands in bin 0 instead of dividing by 0.
    width = torch.where(high > low, (high - low) / bins, torch.ones_like(high))

    counts = torch.zeros(n_dims * bins, dtype=torch.int64, device=mu.device)
    binner = _Binner(low, width, bins, min(chunk_rows, n_rows))
    for start in range(0, n_rows, chunk_rows):
        places = binner.places(mu[start : start + chunk_rows])
        counts += torch.bincount(places.view(-1), minlength=len(counts))
    return BinnedLatents(mu, low, width, counts.view(n_dims, bins), n_rows if total_rows is None else int(total_rows))


def histogram_counts(
    mu: torch.Tensor, bins: int, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-dimension bin counts [D, bins] and the bin geometry (low [D], width [D]) of latents [N, D].

    All three are float64: sample x is in bin clip(floor((x - low) / width), 0, bins - 1), computed
    in float64.
    """
    binned = bin_latents(mu, bins, chunk_rows=chunk_rows)
    return binned.own_counts.double(), binned.low, binned.width


def _check_combine_alpha(combine: str, alpha: float) -> None:
    if combine not in COMBINATIONS:
        raise ValueError(f"combine must be one of {COMBINATIONS}, got {combine!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")


def score_bins(
    binned: BinnedLatents,
    counts: torch.Tensor,
    alpha: float = 0.01,
    combine: str = "geometric",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Unnormalized log-weights [rows of `binned`] (float64) from the per-dimension counts [D, bins]
    of all `binned.total_rows` training rows; larger = rarer."""
    _check_combine_alpha(combine, alpha)
    mu = binned.latents
    n_rows, n_dims = mu.shape
    bins = binned.own_counts.shape[1]
    if tuple(counts.shape) != (n_dims, bins):
        raise ValueError(f"counts must be [{n_dims}, {bins}], got {tuple(counts.shape)}")
    smoothed = counts.to(mu.device).double() / binned.total_rows + alpha
    # Per-dimension score of each bin, -log Q^_i(bin); empty bins (alpha = 0) get +inf but no
    # sample ever falls in an empty bin, so the scores looked up below stay finite.
    table = -torch.log(smoothed / smoothed.sum(dim=1, keepdim=True)).view(-1)

    # The bins are computed again rather than kept from bin_latents: measured as fast as keeping a
    # 2-byte index per value, which would hold another 200 MB at 1,000,000 x 100.
    reduce = torch.amax if combine == "max" else torch.sum
    out = torch.empty(n_rows, dtype=torch.float64, device=mu.device)
    binner = _Binner(binned.low, binned.width, bins, min(chunk_rows, n_rows))
    gathered = torch.empty_like(binner.scaled)
    for start in range(0, n_rows, chunk_rows):
        places = binner.places(mu[start : start + chunk_rows])
        per_dim = torch.index_select(table, 0, places.view(-1), out=gathered.view(-1)[: places.numel()])
        reduce(per_dim.view(places.shape), dim=1, out=out[start : start + len(places)])
    if combine == "geometric":
        out /= n_dims
    return out


def histogram_log_weights(
    mu: torch.Tensor,
    bins: int = 10,
    alpha: float = 0.01,
    combine: str = "geometric",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Unnormalized log-weights [N] (float64) of latent means mu [N, D]; larger = rarer."""
    _check_combine_alpha(combine, alpha)
    binned = bin_latents(mu, bins, chunk_rows=chunk_rows)
    return score_bins(binned, binned.counts(), alpha, combine, chunk_rows)


def histogram_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `histogram` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return histogram_log_weights(inputs.latents, bins=settings.bins, alpha=settings.alpha, combine=settings.combine)
