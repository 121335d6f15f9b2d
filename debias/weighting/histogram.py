"""The paper's density estimate: per-dimension histograms of the latent means.

For latent dimension i, Q_i is the histogram of mu_i over the training samples (fraction of
samples per bin, bins of equal width between that dimension's min and max). Smoothed and
renormalized, Q^_i = (Q_i + alpha) / sum_bins(Q_i + alpha). A sample's per-dimension score is
s_i = -log Q^_i(mu_i); the dimensions are combined into one log-weight by

- product   (the paper):        sum_i s_i            -> W = prod_i 1 / Q^_i
- geometric (product ** 1/D):    mean_i s_i
- max       (the public lab):    max_i s_i            -> only the rarest dimension counts

alpha -> 0 makes W uniform over latent space; alpha -> inf makes it uniform over samples.
Everything is computed in log space (a product of 100 numbers below 1 underflows float32) and
in chunks of rows, so memory stays at O(chunk x D) on top of the latents themselves.

How it runs at scale (1,000,000 x 100 latents; measurements in BENCHMARKS.md, "Density at scale"):

- Bins are exactly those of the float64 formula, clip(floor((x - low) / width), 0, bins - 1)
  with low and width in float64, evaluated chunk by chunk in a reused chunk x D float64 buffer
  (multiplying by a reciprocal checked to bin every possible value the same, see
  `_exact_reciprocal`). Float32 arithmetic would be cheaper but moves samples that sit on a bin
  edge into the neighbouring bin: a 1e-2 error in their geometric log-weight at 100 dimensions.
- Three passes: min/max, bin indices + counts, scores. The second pass keeps the bin indices
  for the third, packed: the indices of p dimensions (p = 3 at 10 bins) form one small-int code
  per row and group, 0.7 bytes per latent value at 100 dimensions instead of 4. Counting is a
  `bincount` over the codes (each group's joint histogram, summed into per-dimension ones);
  scoring gathers each code's summed (or max) per-dimension scores from a float64 table with
  `index_select` and adds (or maxes) a row's groups. Packing divides the elements both touch by p.

The passes are also public one at a time, for rows spread over processes (debias.weighting.sharded):
`latent_range` (pass one), `bin_latents` (pass two, on a given range) and `score_bins` (pass three,
from given counts). Each process bins its rows on the range reduced over all of them, the integer
counts are summed, and every row gets exactly the score `histogram_log_weights` gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

COMBINATIONS = ("product", "geometric", "max")
# 4096 rows x 100 dimensions: a 3.3 MB float64 chunk buffer, in this CPU's L2 + L3 cache. 1024 to
# 8192 measured within noise of each other with one thread; larger chunks fall out of cache,
# smaller ones pay more per-call overhead, and with two threads each op's OpenMP start costs.
DEFAULT_CHUNK_ROWS = 4096

# A packed group's code indexes tables of (bins + 1)**p entries (digit `bins` is a value at the
# top edge, see _Packing). At most 4096 keeps the bincount counters and the score table near L2
# (1331 entries x 34 groups x 8 bytes = 0.36 MB at 10 bins and 100 dimensions) and packs 3
# dimensions per code up to 15 bins, 2 up to 63; 4 per code (16384) measured slower.
_MAX_CODES_PER_GROUP = 4096
# Latent matrices from this many elements up multiply by a checked reciprocal and pack codes.
_LARGE = 1 << 21
# Chunks per bincount / index_select call (see _code_blocks).
_BLOCK_CHUNKS = 4
# Integer types of the same width, to order floating-point values by their bits.
_SAME_WIDTH_INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}


def _min_max(mu: torch.Tensor, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Element-wise minimum/maximum into a chunk-sized accumulator, reduced over rows once at the
    # end: this reads the latents at about memory speed, while amin(dim=0) over the whole [N, D]
    # matrix is several times slower on CPU (a strided reduction over 100 short columns).
    first = mu[:chunk_rows]
    low, high = first.clone(), first.clone()
    for start in range(chunk_rows, len(mu), chunk_rows):
        chunk = mu[start : start + chunk_rows]
        n = len(chunk)
        torch.minimum(low[:n], chunk, out=low[:n])
        torch.maximum(high[:n], chunk, out=high[:n])
    return low.amin(dim=0), high.amax(dim=0)


def _ordinal(x: torch.Tensor) -> torch.Tensor:
    """int64 keys in the order of the floating-point values x (the map is its own inverse on keys)."""
    bits = x.view(_SAME_WIDTH_INT[x.dtype]).long()
    # Non-negative floats order like their bits; negative ones (sign bit set) in reverse.
    magnitude = (1 << (8 * x.element_size() - 1)) - 1
    return torch.where(bits < 0, bits ^ magnitude, bits)


def _from_ordinal(keys: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    magnitude = (1 << (torch.finfo(dtype).bits - 1)) - 1
    bits = torch.where(keys < 0, keys ^ magnitude, keys)
    return bits.to(_SAME_WIDTH_INT[dtype]).view(dtype)


def _exact_reciprocal(low_x: torch.Tensor, high_x: torch.Tensor, low: torch.Tensor, width: torch.Tensor, bins: int):
    """A multiplier [D] close to 1 / width such that (x - low) * multiplier puts every possible
    value x in the bin that (x - low) / width does, or None if there is none.

    Multiplying is cheaper than dividing (a tenth of the whole computation on CPU), but products
    and quotients can round differently. Both are monotone in x, so they agree on every value
    between the min and max (low_x, high_x, in the latents' dtype) iff they agree on each bin's
    first value and the value just below it. The first values are found by bisection over the
    dtype's values, in their bit order. Bin edges often fall exactly on a latent value (the middle
    edge is (min + max) / 2); its quotient is then exactly k and the product can round just below,
    so each dimension takes the first of 1 / width and its next few floats up that agrees.
    """
    dtype = low_x.dtype
    if dtype not in _SAME_WIDTH_INT:
        return None
    edges = torch.arange(1, bins, dtype=torch.float64, device=low.device)

    def reaches(x: torch.Tensor, multiplier: torch.Tensor | None) -> torch.Tensor:
        # the same float64 operations, in the same order, as the chunk loop of _scan
        offset = x.to(torch.float64) - low[:, None]
        q = offset / width[:, None] if multiplier is None else offset * multiplier[:, None]
        return torch.floor(q) >= edges

    n_dims = len(low)
    below = _ordinal(low_x)[:, None].expand(n_dims, bins - 1).clone()  # never reaches edge k >= 1
    above = _ordinal(high_x)[:, None].expand(n_dims, bins - 1).clone()
    exists = reaches(_from_ordinal(above, dtype), None)  # some value reaches edge k
    while True:
        open_ = exists & (above - below > 1)
        if not bool(open_.any()):
            break
        mid = (below >> 1) + (above >> 1) + (below & above & 1)  # no int64 overflow
        up = reaches(_from_ordinal(mid, dtype), None)
        above = torch.where(open_ & up, mid, above)
        below = torch.where(open_ & ~up, mid, below)
    first = _from_ordinal(above, dtype)
    before = _from_ordinal(below, dtype)

    candidate = 1.0 / width
    chosen = torch.full_like(candidate, math.nan)
    for _ in range(4):
        in_first = reaches(first, candidate)
        agree = torch.where(exists, in_first & ~reaches(before, candidate), ~in_first).all(dim=1)
        chosen = torch.where(torch.isnan(chosen) & agree, candidate, chosen)
        candidate = torch.nextafter(candidate, torch.full_like(candidate, math.inf))
    return None if bool(torch.isnan(chosen).any()) else chosen


class _Packing:
    """How the bin indices of several dimensions share one code.

    Group g holds dimensions g, g + G, g + 2G, ... (digit j is dimension g + j*G), so each digit
    is a contiguous column block of the index matrix; code = sum_j digit_j * (bins + 1)**j.
    A digit is floor((x - low) / width) before clipping, in [0, bins]: `bins` (x at the top edge)
    is counted and scored as the last bin, which saves clipping every index. Dimensions past D are
    absent: digit 0, score 0 (-inf for max).
    """

    def __init__(self, n_dims: int, bins: int, pack: bool):
        self.n_dims = n_dims
        self.bins = bins
        self.base = bins + 1
        most = int(math.log(_MAX_CODES_PER_GROUP) / math.log(self.base) + 1e-9)
        self.digits = max(1, min(n_dims, most)) if pack else 1
        self.groups = -(-n_dims // self.digits)
        self.cells = self.base**self.digits
        self.code_dtype = torch.int16 if self.cells <= 2**15 else torch.int32
        self.index_dtype = torch.int16 if self.base <= 2**15 else torch.int32

    def _blocks(self):
        """(digit j, first dim, last dim + 1) of each non-empty digit block."""
        for j in range(self.digits):
            lo, hi = j * self.groups, min((j + 1) * self.groups, self.n_dims)
            if hi > lo:
                yield j, lo, hi

    def pack(self, scaled: torch.Tensor, idx: torch.Tensor, out: torch.Tensor) -> None:
        """Codes [n, G] of (x - low) / width [n, D] (float64, >= 0), written into `out`.

        The integer casts truncate, which is the floor for non-negative values. Digit 0 is cast
        straight into `out`; the other digits go through `idx` [n, D - G] first.
        """
        out.copy_(scaled[:, : self.groups])
        if self.digits > 1:
            idx.copy_(scaled[:, self.groups :])
            for j, lo, hi in self._blocks():
                if j > 0:
                    out[:, : hi - lo].add_(idx[:, lo - self.groups : hi - self.groups], alpha=self.base**j)

    def table(self, per_dim: torch.Tensor, fill: float, reduce) -> torch.Tensor:
        """[G * cells] table of reduce(values of the code's digits), from per-dimension values [D, bins]."""
        per_digit = torch.cat([per_dim, per_dim[:, -1:]], dim=1)  # digit `bins` is the last bin
        table = None
        for j in range(self.digits):
            lo, hi = j * self.groups, min((j + 1) * self.groups, self.n_dims)
            block = per_digit.new_full((self.groups, self.base), fill)
            block[: max(hi - lo, 0)] = per_digit[lo:hi]
            shape = [self.groups] + [1] * self.digits
            shape[self.digits - j] = self.base  # codes are row-major over (digit p-1, ..., digit 0)
            block = block.view(shape)
            table = block if table is None else reduce(table, block)
        return table.expand([self.groups] + [self.base] * self.digits).reshape(-1)

    def marginals(self, joint: torch.Tensor) -> torch.Tensor:
        """Per-dimension counts [D, bins] from the joint counts [G * cells] of each group's codes."""
        joint = joint.view([self.groups] + [self.base] * self.digits)
        counts = joint.new_zeros(self.n_dims, self.base)
        for j, lo, hi in self._blocks():
            others = [1 + a for a in range(self.digits) if a != self.digits - 1 - j]
            counts[lo:hi] = (joint.sum(dim=others) if others else joint)[: hi - lo]
        counts[:, -2] += counts[:, -1]
        return counts[:, :-1]


class _Block:
    """Rows of the packed codes, with their int32 table indices (code + group offset) on demand."""

    def __init__(self, codes: torch.Tensor, flat: torch.Tensor, group_offsets: torch.Tensor):
        self.codes, self._flat, self._offsets = codes, flat, group_offsets

    def __len__(self) -> int:
        return len(self.codes)

    def flat(self) -> torch.Tensor:
        """Indices into the [G * cells] tables (bincount and index_select take int32, not int16)."""
        return self._flat.copy_(self.codes).add_(self._offsets)


def _code_blocks(codes: torch.Tensor, chunk_rows: int, packing: _Packing):
    """(first row, _Block) over the packed codes, _BLOCK_CHUNKS chunks at a time.

    bincount and the gathers cost a fixed overhead per call (bincount first scans its input for
    its min and max), so they take several chunks at once. A block's int32 indices and gathered
    float64 scores take _BLOCK_CHUNKS * G * 12 bytes per chunk row, twice the float64 chunk
    buffer's 8 * D at G ~ D/3.
    """
    block_rows = min(chunk_rows * _BLOCK_CHUNKS, len(codes))
    flat = torch.empty(block_rows, packing.groups, dtype=torch.int32, device=codes.device)
    group_offsets = torch.arange(packing.groups, dtype=torch.int32, device=codes.device) * packing.cells
    for start in range(0, len(codes), block_rows):
        block_codes = codes[start : start + block_rows]
        yield start, _Block(block_codes, flat[: len(block_codes)], group_offsets)


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
    return _min_max(mu, chunk_rows)


def _scan(mu: torch.Tensor, bins: int, chunk_rows: int, value_range=None, total_rows: int | None = None):
    """Bin geometry (low, width), packing, packed codes [N, G] and joint code counts [G * cells].

    `value_range` (low_x, high_x) replaces mu's own range and `total_rows` its row count in the
    choice of method: both as for the whole matrix when mu is one block of its rows.
    """
    _check_latents(mu, chunk_rows)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    n_rows, n_dims = mu.shape
    device = mu.device
    if value_range is None:
        low_x, high_x = _min_max(mu, chunk_rows)
    else:
        low_x, high_x = value_range
        if low_x.shape != (n_dims,) or high_x.shape != (n_dims,) or low_x.dtype != mu.dtype or high_x.dtype != mu.dtype:
            raise ValueError(f"value_range must be two [{n_dims}] tensors of the latents' dtype {mu.dtype}")
        low_x, high_x = low_x.to(device), high_x.to(device)
    if not bool(torch.isfinite(low_x).all() & torch.isfinite(high_x).all()):
        raise ValueError("latents contain NaN or infinite values")
    low, high = low_x.to(torch.float64), high_x.to(torch.float64)
    # A constant dimension gets width 1 so every sample lands in bin 0 instead of dividing by 0.
    width = torch.where(high > low, (high - low) / bins, torch.ones_like(high))
    # Below _LARGE elements the fixed costs of the reciprocal's check and of the packed tables
    # outweigh what they save, and division with one dimension per code is used.
    large = (n_rows if total_rows is None else total_rows) * n_dims >= _LARGE
    reciprocal = _exact_reciprocal(low_x, high_x, low, width, bins) if large else None
    packing = _Packing(n_dims, bins, pack=large)
    rows = min(chunk_rows, n_rows)
    scaled = torch.empty(rows, n_dims, dtype=torch.float64, device=device)
    idx = torch.empty(rows, n_dims - packing.groups, dtype=packing.index_dtype, device=device)
    codes = torch.empty(n_rows, packing.groups, dtype=packing.code_dtype, device=device)
    joint = torch.zeros(packing.groups * packing.cells, dtype=torch.int64, device=device)
    for block_start, block in _code_blocks(codes, chunk_rows, packing):
        block_end = block_start + len(block)
        for start in range(block_start, block_end, chunk_rows):
            chunk = mu[start : min(start + chunk_rows, block_end)]
            q = scaled[: len(chunk)]
            q.copy_(chunk).sub_(low)
            if reciprocal is None:
                q.div_(width)
            else:
                q.mul_(reciprocal)
            # q >= 0, so the integer cast (truncation toward zero) is the floor.
            packing.pack(q, idx[: len(chunk)], codes[start : start + len(chunk)])
        joint += torch.bincount(block.flat().view(-1), minlength=len(joint))
    return low, width, packing, codes, joint


def histogram_counts(mu: torch.Tensor, bins: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-dimension bin counts [D, bins] and the bin geometry (low [D], width [D]) of latents [N, D].

    All three are float64: sample x is in bin clip(floor((x - low) / width), 0, bins - 1), computed
    in float64.
    """
    low, width, packing, _, joint = _scan(mu, bins, chunk_rows)
    return packing.marginals(joint).double(), low, width


@dataclass(frozen=True)
class BinnedLatents:
    """Latent rows put in their histogram bins: what counting and scoring share (made by `bin_latents`).

    `counts()` are these rows' per-dimension counts; `score_bins` turns counts (these, or the sum of
    the counts of every block of the training rows) into these rows' log-weights.
    """

    packing: _Packing
    codes: torch.Tensor
    joint: torch.Tensor
    total_rows: int

    def counts(self) -> torch.Tensor:
        """Per-dimension bin counts [D, bins] (int64) of these rows."""
        return self.packing.marginals(self.joint).contiguous()


def bin_latents(
    mu: torch.Tensor,
    bins: int = 10,
    value_range: tuple[torch.Tensor, torch.Tensor] | None = None,
    total_rows: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> BinnedLatents:
    """Bin latent means mu [N, D] for `score_bins`.

    Alone, mu is the whole training matrix. For one block of its rows (a process's shard), pass
    `value_range`: the (min, max) of `latent_range` over every block, which must contain every value
    of mu, and `total_rows`: the rows of every block. Then the bins and the method are those of the
    whole matrix, and the blocks' counts sum exactly to the whole matrix's counts.
    """
    _, _, packing, codes, joint = _scan(mu, bins, chunk_rows, value_range, total_rows)
    return BinnedLatents(packing, codes, joint, len(mu) if total_rows is None else int(total_rows))


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
    packing, codes = binned.packing, binned.codes
    if tuple(counts.shape) != (packing.n_dims, packing.bins):
        raise ValueError(f"counts must be [{packing.n_dims}, {packing.bins}], got {tuple(counts.shape)}")
    n_rows, n_dims, device = len(codes), packing.n_dims, codes.device
    smoothed = counts.to(device).double() / binned.total_rows + alpha
    # Per-dimension score of each bin, -log Q^_i(bin); empty bins (alpha = 0) get +inf but no
    # sample ever falls in an empty bin, so the scores looked up below stay finite.
    scores = -torch.log(smoothed / smoothed.sum(dim=1, keepdim=True))

    # The score of each code of each group: the sum (or max) of its digits' per-dimension scores.
    # Codes holding an empty bin's +inf never occur, so those entries are never read.
    if combine == "max":
        table = packing.table(scores, -math.inf, torch.maximum)
    else:
        table = packing.table(scores, 0.0, torch.add)

    out = torch.empty(n_rows, dtype=torch.float64, device=device)
    gathered = None
    for start, block in _code_blocks(codes, chunk_rows, packing):
        if gathered is None:
            gathered = torch.empty(len(block) * packing.groups, dtype=torch.float64, device=device)
        rows = len(block)
        per_group = torch.index_select(table, 0, block.flat().view(-1), out=gathered[: rows * packing.groups])
        reduce = torch.amax if combine == "max" else torch.sum
        reduce(per_group.view(rows, packing.groups), dim=1, out=out[start : start + rows])
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
