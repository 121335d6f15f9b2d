"""Helpers the benchmarks share: settings given as text, and the mean weight of each training cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from debias.fit import FitConfig
from debias.groups import group_labels
from debias.settings import base_type, declared


def parse_variant(text: str) -> dict:
    """'beta=0.0005,epochs=6' -> {("beta",): 0.0005, ("epochs",): 6}: FitConfig/WeightingSettings fields by name,
    typed by their declarations ('a+b' for a tuple, 'none' for None)."""
    items = {item.name: item for item in declared(FitConfig)}
    values = {}
    for pair in filter(None, text.split(",")):
        name, _, raw = pair.partition("=")
        item = items[name.strip()]
        kind, optional, many = base_type(item.hint)
        if raw.lower() == "none" and optional:
            value = None
        elif many:
            value = tuple(raw.split("+"))
        elif kind is bool:
            value = raw.lower() in ("1", "true", "yes")
        else:
            value = kind(raw)
        values[item.path] = value
    return values


def cell_weights(run_dir: Path, dataset) -> dict[str, float]:
    """Mean weight of each training cell (group columns x label) in weights.csv, relative to the most common
    cell among the rows the strategy scores (faces in face detection)."""
    frame = pd.read_csv(run_dir / "weights.csv")
    train = dataset.train
    frame["cell"] = group_labels(train.attributes, dataset.group_columns, train.labels).to_numpy()
    scored = frame[frame["log_density"].notna()] if frame["log_density"].notna().any() else frame
    means = frame.groupby("cell")["weight"].mean()
    common = scored["cell"].value_counts().idxmax()
    return {cell: float(np.round(w / means[common], 2)) for cell, w in means.items()}
