"""Weight files for existing training pipelines: read a weights.csv, check it, align it to your ids.

A `weights.csv` (written by `debias fit` or `debias weights`) has one row per training sample with
at least the columns `sample_id` (the dataset's own id, e.g. the CelebA file name) and `weight`
(finite, positive, mean 1). Your pipeline lists its samples in its own order; `align` looks each
id up, so the order of either side does not matter, and refuses ids that do not match.

    from debias.weight_files import SampleWeights
    weights = SampleWeights.load("runs/celeba/weights.csv")
    loader = DataLoader(dataset, batch_size=64, sampler=weights.to_sampler(dataset.ids))

For scikit-learn: `model.fit(X, y, sample_weight=weights.to_sample_weight(ids))`. Under DDP,
`weights.to_sampler(ids, rank=rank, world_size=world_size)` gives each process its share of one
global draw (call `sampler.set_epoch(epoch)` every epoch, as with DistributedSampler).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from debias import io
from debias.errors import UserError
from debias.sampling import weighted_indices

REQUIRED_COLUMNS = ("sample_id", "weight")
# Columns holding a row's true group attribute (group_Male): written by `debias fit` when the data
# has group columns, read by the group strategies of `debias weights` and by per-group reports.
GROUP_PREFIX = "group_"
EXAMPLES_SHOWN = 3


def _examples(values: Sequence) -> str:
    shown = ", ".join(repr(str(v)) for v in list(values)[:EXAMPLES_SHOWN])
    return shown + (", ..." if len(values) > EXAMPLES_SHOWN else "")


def _as_id_array(ids, what: str) -> np.ndarray:
    # Ids are compared as strings: weights.csv stores them as text, and a pipeline may hold them
    # as ints, numpy strings or pandas objects.
    if isinstance(ids, (str, bytes)):
        raise UserError(f"{what} must be a sequence of sample ids, got a single string {ids!r}")
    array = np.asarray(list(ids) if not isinstance(ids, (np.ndarray, pd.Series, pd.Index)) else ids)
    if array.ndim != 1:
        raise UserError(f"{what} must be a flat sequence of sample ids, got an array of shape {array.shape}")
    return array.astype(str)


class SampleWeights:
    """Per-sample weights keyed by sample id, as read from a weights.csv.

    `weights` holds the values as given; everything aligned to ids (`align`, `to_sample_weight`,
    `to_sampler`) has mean 1 over those ids.

    weights = SampleWeights.load("runs/x/weights.csv")
    w = weights.align(my_ids)                       # numpy float64, in the order of my_ids
    sampler = weights.to_sampler(my_ids, seed=0)    # for DataLoader(sampler=...)
    """

    def __init__(self, sample_ids, weights, source: str = "<weights>"):
        """Weights `weights[i]` for `sample_ids[i]`; ids must be unique, weights finite and positive."""
        self.source = str(source)
        ids = _as_id_array(sample_ids, f"the sample ids of {self.source}")
        values = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(ids) != len(values):
            raise UserError(f"{self.source}: {len(ids)} sample ids but {len(values)} weights")
        _check_rows(ids, values, self.source)
        self.sample_ids = ids
        self.weights = values
        self._index = pd.Index(ids)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SampleWeights:
        """Read and check a weights.csv; every problem is a UserError naming the file and an example row.

        weights = SampleWeights.load("runs/x/weights.csv")
        print(len(weights), weights.weights.mean())   # rows, 1.0 for files debias wrote
        w = weights.to_sample_weight(ids)
        """
        frame = read_weights_frame(path)
        return cls(frame["sample_id"].to_numpy(), frame["weight"].to_numpy(dtype=np.float64), source=str(path))

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __repr__(self) -> str:
        return f"SampleWeights({self.source!r}, rows={len(self)})"

    def align(self, ids, allow_extra: bool = False) -> np.ndarray:
        """The weight of each id in `ids`, in that order (float64 [len(ids)]).

            w = weights.align(dataset.sample_ids)       # w[i] belongs to dataset.sample_ids[i]
            w = weights.align(train_ids, allow_extra=True)   # training on a subset on purpose
            assert len(w) == len(dataset.sample_ids)

        Every id must have a weight (else UserError with how many are missing and examples), no id
        may appear twice, and, unless `allow_extra`, every row of the file must be used: a file for
        a different dataset or split is refused instead of silently matching a fraction of it. With
        `allow_extra` the unused rows are dropped.

        One rule for the scale: the aligned weights are always rescaled to mean 1 over the ids
        aligned to, whether those are all of the file's rows or a subset and whoever wrote the file,
        so they are a ready `sample_weight` (a file debias wrote has mean 1 already).
        """
        wanted = _as_id_array(ids, "the ids to align to")
        if len(wanted) == 0:
            raise UserError(f"cannot align {self.source} to an empty list of ids")
        wanted_index = pd.Index(wanted)
        if wanted_index.has_duplicates:
            dups = wanted_index[wanted_index.duplicated()].unique()
            raise UserError(
                f"your dataset lists {len(dups)} sample ids more than once (e.g. {_examples(dups)}); "
                "each sample needs a unique id to get its weight from " + self.source
            )
        positions = self._index.get_indexer(wanted_index)
        missing = wanted[positions < 0]
        extra = self._index.difference(wanted_index) if not allow_extra else pd.Index([])
        if len(missing) or len(extra):
            raise UserError(self._mismatch_message(wanted, missing, extra))
        aligned = self.weights[positions]
        return aligned * (len(aligned) / aligned.sum())

    def _mismatch_message(self, wanted: np.ndarray, missing: np.ndarray, extra: pd.Index) -> str:
        parts = []
        none_match = len(missing) == len(wanted)
        if len(missing):
            parts.append(f"{len(missing)} of your {len(wanted)} ids have no row in it (e.g. {_examples(missing)})")
        if len(extra):
            # Allowing extra rows is the fix for a file of a larger run, never for ids that match nothing.
            hint = (
                ""
                if none_match
                else "; if you train on a subset on purpose, allow the extra rows "
                "(allow_extra=True; --allow-extra in the pipelines/ scripts)"
            )
            parts.append(
                f"{len(extra)} of its {len(self)} rows are not in your dataset (e.g. {_examples(extra)}){hint}"
            )
        message = f"{self.source} does not match your dataset: " + "; ".join(parts) + "."
        if none_match:
            message += (
                f" No id matches at all: ids are compared as exact strings; the file has ids like "
                f"{_examples(self.sample_ids)} and your dataset {_examples(wanted)} (a missing file extension, "
                "a folder prefix or leading zeros are the usual causes). Pass the ids your dataset "
                "uses for the same images as the weights file."
            )
        return message

    def to_sample_weight(self, ids, allow_extra: bool = False) -> np.ndarray:
        """Weights in the order of `ids`, for scikit-learn's `fit(X, y, sample_weight=...)` (mean 1).

        w = weights.to_sample_weight(ids)
        LogisticRegression().fit(X, y, sample_weight=w)
        # rows of X, y and ids are the same samples in the same order
        """
        return self.align(ids, allow_extra=allow_extra)

    def to_sampler(
        self,
        ids,
        num_samples: int | None = None,
        seed: int = 0,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        allow_extra: bool = False,
    ) -> Sampler[int]:
        """A sampler yielding positions into `ids` (your dataset's order), drawn with replacement by weight.

            sampler = weights.to_sampler(dataset.sample_ids, seed=0)
            loader = DataLoader(dataset, batch_size=64, sampler=sampler)   # no shuffle=True
            # DDP: weights.to_sampler(ids, rank=rank, world_size=world_size); sampler.set_epoch(epoch)

        num_samples: draws per epoch (all ranks together under DDP); default len(ids), one epoch's
            worth. seed: seeds a torch.Generator, so the sequence of epochs is reproducible.
        Without rank/world_size: a torch WeightedRandomSampler (each iteration is a new draw).
        With them: a DistributedWeightedSampler; every rank must pass the same seed and num_samples.
        """
        weights = self.align(ids, allow_extra=allow_extra)
        if (rank is None) != (world_size is None):
            raise UserError("pass both rank and world_size for a per-rank sampler, or neither")
        if rank is None:
            total = _check_num_samples(num_samples, len(weights))
            generator = torch.Generator()
            generator.manual_seed(seed)
            return WeightedRandomSampler(
                torch.as_tensor(weights, dtype=torch.float64), total, replacement=True, generator=generator
            )
        return DistributedWeightedSampler(
            weights, num_samples=num_samples, num_replicas=world_size, rank=rank, seed=seed
        )


class DistributedWeightedSampler(Sampler[int]):
    """Weighted sampling with replacement under DDP: one global draw, each rank takes an interleaved share.

        sampler = DistributedWeightedSampler(w, num_replicas=world_size, rank=rank, seed=0)
        loader = DataLoader(dataset, batch_size=64, sampler=sampler)
        for epoch in range(epochs): sampler.set_epoch(epoch); ...

    Every rank draws the same `num_samples` global indices from a generator seeded with
    seed + epoch, then keeps positions rank, rank + world_size, ...: the ranks' shares are disjoint
    slices of one weighted sample, so together they see what one process would. The global draw
    is rounded up to a multiple of world_size (or down with drop_last) so every rank takes the
    same number of steps, which DDP needs to avoid hanging.
    """

    def __init__(
        self,
        weights,
        num_samples: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ):
        """weights: one finite non-negative weight per dataset position; num_samples: global draws per
        epoch (default len(weights)); num_replicas/rank: default from torch.distributed when initialized."""
        if num_replicas is None or rank is None:
            if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                raise UserError("pass num_replicas and rank, or initialize torch.distributed first")
            num_replicas = torch.distributed.get_world_size() if num_replicas is None else num_replicas
            rank = torch.distributed.get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise UserError(f"rank must be in [0, world_size), got rank={rank}, world_size={num_replicas}")
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if (
            self.weights.ndim != 1
            or len(self.weights) == 0
            or not torch.isfinite(self.weights).all()
            or (self.weights < 0).any()
            or self.weights.sum() <= 0
        ):
            raise UserError("weights must be a non-empty vector of finite non-negative numbers with a positive sum")
        requested = _check_num_samples(num_samples, len(self.weights))
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        per_rank = requested // num_replicas if drop_last else math.ceil(requested / num_replicas)
        if per_rank == 0:
            raise UserError(f"num_samples={requested} is fewer than world_size={num_replicas} with drop_last")
        self.num_samples = per_rank
        self.total_size = per_rank * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use a different (but on every rank the same) draw for `epoch`."""
        self.epoch = epoch

    def global_indices(self) -> torch.Tensor:
        """This epoch's draw across all ranks (identical on every rank)."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return weighted_indices(self.weights, self.total_size, generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def _check_num_samples(num_samples: int | None, n: int) -> int:
    if num_samples is None:
        return n
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise UserError(f"num_samples must be a positive integer, got {num_samples!r}")
    return int(num_samples)


def read_weights_frame(path: str | os.PathLike) -> pd.DataFrame:
    """A checked weights.csv as a DataFrame: sample_id as str, weight as float64, other columns as read.

    UserError when the file is missing or unreadable, lacks `sample_id` or `weight`, has no rows,
    or has an empty, duplicated or non-finite/non-positive entry (with the row count and an example id).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; `debias fit` writes RUN/weights.csv")
    try:
        # ids stay text exactly as written ("000001.jpg", "007"), never parsed as numbers or NaN
        frame = pd.read_csv(
            path, dtype={"sample_id": str}, keep_default_na=False, na_values={"weight": ["", "nan", "NaN"]}
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(
            f"cannot read {path} as CSV ({exc}); a weights file has a header row `sample_id,weight,...`"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path} has no column {' or '.join(repr(c) for c in missing)} ({len(frame)} rows, columns: "
            f"{', '.join(map(str, frame.columns))}); a weights file needs `sample_id` and `weight`"
        )
    if len(frame) == 0:
        raise UserError(f"{path} has a header but no rows; it needs one row per training sample")
    frame["sample_id"] = frame["sample_id"].astype(str)
    raw = frame["weight"]
    frame["weight"] = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    not_number = frame["weight"].isna() & raw.notna() & (raw.astype(str) != "")
    if not_number.any():
        example = frame.loc[not_number].iloc[0]
        raise UserError(
            f"{path}: {int(not_number.sum())} of {len(frame)} rows have a weight that is not a number "
            f"(e.g. sample {example['sample_id']!r}: {raw[not_number].iloc[0]!r})"
        )
    _check_rows(frame["sample_id"].to_numpy(), frame["weight"].to_numpy(), str(path))
    return frame


def _check_rows(ids: np.ndarray, weights: np.ndarray, source: str) -> None:
    n = len(ids)
    if n == 0:
        raise UserError(f"{source} holds no weights")
    empty = ids == ""
    if empty.any():
        raise UserError(
            f"{source}: {int(empty.sum())} of {n} rows have an empty sample_id (first at row {int(np.argmax(empty)) + 1})"
        )
    checks = (
        (np.isnan(weights), "a missing (NaN) weight"),
        (np.isinf(weights), "an infinite weight"),
        (~np.isnan(weights) & (weights <= 0), "a weight <= 0 (weights must be positive)"),
    )
    for bad, problem in checks:
        if bad.any():
            raise UserError(
                f"{source}: {int(bad.sum())} of {n} rows have {problem} (e.g. sample {ids[bad][0]!r}: {weights[bad][0]})"
            )
    index = pd.Index(ids)
    if index.has_duplicates:
        dups = index[index.duplicated()].unique()
        raise UserError(
            f"{source}: {len(dups)} sample ids appear more than once (e.g. {_examples(dups)}); each id needs one row"
        )


def write_weights(path: str | os.PathLike, sample_ids, weights, log_density=None, labels=None, groups=None) -> Path:
    """Write a weights file atomically: columns sample_id, weight (+ log_density, label, group_<attr> when given).

    write_weights("runs/x/my-weights.csv", ids, w)
    SampleWeights.load("runs/x/my-weights.csv").align(ids)   # round-trips
    # the file is replaced in one step: readers never see half a file

    groups: a DataFrame (or dict) of the rows' true group attributes, written as `group_<name>`
    columns (`group_columns` reads them back).
    """
    columns = {"sample_id": _as_id_array(sample_ids, "sample_ids"), "weight": np.asarray(weights, dtype=np.float64)}
    if log_density is not None:
        columns["log_density"] = np.asarray(log_density, dtype=np.float64)
    if labels is not None:
        columns["label"] = np.asarray(labels)
    for name, values in dict(groups if groups is not None else {}).items():
        columns[GROUP_PREFIX + str(name)] = np.asarray(values)
    _check_rows(columns["sample_id"], columns["weight"], str(path))
    io.write_csv(path, pd.DataFrame(columns))
    return Path(path)


def group_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The group attributes a weights frame carries, named without their prefix (group_Male -> Male).

    groups = group_columns(read_weights_frame("runs/x/weights.csv"))
    list(groups.columns)   # ["Male"] for a CelebA fit with --groups Male
    """
    kept = [c for c in frame.columns if str(c).startswith(GROUP_PREFIX)]
    return frame[kept].rename(columns=lambda c: str(c)[len(GROUP_PREFIX) :])


def load_weights(path: str | os.PathLike) -> SampleWeights:
    """Read and check a weights.csv (same as SampleWeights.load).

    weights = load_weights("runs/x/weights.csv")
    w = weights.align(ids)
    sampler = weights.to_sampler(ids)
    """
    return SampleWeights.load(path)


def to_sampler(path: str | os.PathLike, ids, num_samples: int | None = None, seed: int = 0, **kwargs) -> Sampler[int]:
    """A weighted sampler over `ids` straight from a weights file (see SampleWeights.to_sampler).

    sampler = to_sampler("runs/x/weights.csv", dataset.sample_ids)
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)
    # DDP: to_sampler(path, ids, rank=rank, world_size=world_size)
    """
    return SampleWeights.load(path).to_sampler(ids, num_samples=num_samples, seed=seed, **kwargs)


def to_sample_weight(path: str | os.PathLike, ids, allow_extra: bool = False) -> np.ndarray:
    """scikit-learn `sample_weight` for `ids` straight from a weights file (see SampleWeights.to_sample_weight).

    w = to_sample_weight("runs/x/weights.csv", ids)
    model.fit(X, y, sample_weight=w)
    # w[i] is the weight of ids[i]
    """
    return SampleWeights.load(path).to_sample_weight(ids, allow_extra=allow_extra)


__all__ = [
    "GROUP_PREFIX",
    "DistributedWeightedSampler",
    "SampleWeights",
    "group_columns",
    "load_weights",
    "read_weights_frame",
    "to_sample_weight",
    "to_sampler",
    "write_weights",
]
