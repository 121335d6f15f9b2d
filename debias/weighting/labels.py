"""Weights from labels alone: the baselines every fairness comparison starts with.

None of these looks at the latents; they are here so that a user can hand label-free (histogram,
joint, errors), class-based and group-based weights to the same pipeline and compare.

classes          class balancing: every class gets the same total weight, w ~ 1 / n_y. Needs only the
                 target labels; Idrissi et al. (CLeaR 2022) found it competitive with JTT and Group
                 DRO on worst-group benchmarks, so it belongs in every comparison.
groups           reweighing (Kamiran & Calders 2012, AIF360's `Reweighing`): w = P(g) P(y) / P(g, y)
                 over the group g and the label y of each row, which makes group and label
                 independent under the weights while keeping each group's and each class's mass.
                 Over the rows these weights already average to 1 (sum n_gy P(g)P(y)/P(g,y) = N).
balanced-groups  every (group, label) cell gets the same total weight, w ~ 1 / n_gy: what the oracle
                 model of a fit draws by.
uniform          every weight 1, no reweighting: the baseline of them all.

`groups` is a per-row group name (the group attributes without the label, e.g. 'Male=1'); every
function returns unnormalized log-weights [N] (float64), as the strategies of the registry do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from debias.weighting.compute import WeightingInputs
    from debias.weighting.settings import WeightingSettings


def _counts_of(keys: pd.Series | pd.DataFrame) -> np.ndarray:
    """For each row, how many rows share its key (a value, or a combination of a frame's columns)."""
    if isinstance(keys, pd.DataFrame):
        return keys.groupby(list(keys.columns), sort=False)[keys.columns[0]].transform("size").to_numpy(np.float64)
    return keys.map(keys.value_counts()).to_numpy(np.float64)


def _frame(groups, labels) -> pd.DataFrame:
    y = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)).reshape(-1)
    frame = pd.DataFrame({"label": y})
    if groups is not None:
        g = np.asarray(groups).reshape(-1).astype(str)
        if len(g) != len(y):
            raise ValueError(f"groups has {len(g)} rows but there are {len(y)} labels")
        frame["group"] = g
    return frame


def class_balanced_log_weights(labels) -> torch.Tensor:
    """-log n_y: every class gets the same total weight."""
    counts = _counts_of(_frame(None, labels)["label"])
    return torch.from_numpy(-np.log(counts))


def reweighing_log_weights(groups, labels) -> torch.Tensor:
    """log(P(g) P(y) / P(g, y)) = log(n_g n_y / (N n_gy)): AIF360's reweighing of group and label."""
    frame = _frame(groups, labels)
    n = len(frame)
    n_g, n_y, n_gy = _counts_of(frame["group"]), _counts_of(frame["label"]), _counts_of(frame[["group", "label"]])
    return torch.from_numpy(np.log(n_g) + np.log(n_y) - np.log(n) - np.log(n_gy))


def balanced_group_log_weights(groups, labels) -> torch.Tensor:
    """-log n_gy: every (group, label) cell gets the same total weight."""
    frame = _frame(groups, labels)
    return torch.from_numpy(-np.log(_counts_of(frame[["group", "label"]])))


__all__ = ["balanced_group_log_weights", "class_balanced_log_weights", "reweighing_log_weights"]


def classes_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `classes` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return class_balanced_log_weights(inputs.labels).to(inputs.latents.device)


def groups_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `groups` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return reweighing_log_weights(inputs.groups, inputs.labels).to(inputs.latents.device)


def balanced_groups_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `balanced-groups` strategy's log-weights of the scored rows (debias.weighting.strategies)."""
    return balanced_group_log_weights(inputs.groups, inputs.labels).to(inputs.latents.device)


def uniform_strategy(inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
    """The `uniform` strategy's log-weights: all 0, every weight 1."""
    return torch.zeros(len(inputs.labels), dtype=torch.float64, device=inputs.latents.device)
