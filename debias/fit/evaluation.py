"""Predictions of a fit's models on a split, their accuracy per group, and the predictions files' rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from debias.data import Dataset, ImageSplit
from debias.distributed import SINGLE, DistContext
from debias.groups import accuracy_by_group, group_labels
from debias.train import predict_proba


def sharded_predict(
    model, images: np.ndarray, batch_size: int, device: torch.device, amp: bool, ctx: DistContext = SINGLE
) -> np.ndarray:
    """predict_proba over every image; under DDP each rank predicts its share and all ranks get every row.

    Shares are whole batches of `batch_size`, so each rank runs batches a single process would
    run, and the gathered probabilities are the same bits on every rank.
    """
    if not ctx.distributed:
        return predict_proba(model, images, batch_size, device, amp)
    rows = ctx.shard(len(images), align=batch_size)
    if rows.stop > rows.start:
        local = torch.from_numpy(predict_proba(model, images[rows], batch_size, device, amp))
    else:
        local = torch.empty(0, dtype=torch.float64)
    return ctx.all_gather_rows(local.to(device)).cpu().numpy()


def evaluate(
    model,
    split: ImageSplit,
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    amp: bool,
    ctx: DistContext = SINGLE,
) -> tuple[np.ndarray, dict]:
    """(P(label = 1) per row, accuracy_by_group over the dataset's groups crossed with the label)."""
    prob = sharded_predict(model, split.images, batch_size, device, amp, ctx)
    pred = (prob >= 0.5).astype(np.int64)
    groups = group_labels(split.attributes, dataset.group_columns, split.labels)
    return prob, accuracy_by_group(split.labels, pred, groups)


def predictions_frame(split: ImageSplit, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """The rows of predictions_<split>.csv: one block per model, with ids, labels and attributes (attr_*)."""
    frames = []
    for model_name, prob in probs.items():
        frame = pd.DataFrame(
            {
                "model": model_name,
                "sample_id": split.sample_ids,
                "label": split.labels,
                "prob": prob,
                "pred": (prob >= 0.5).astype(int),
            }
        )
        frames.append(pd.concat([frame, split.attributes.add_prefix("attr_")], axis=1))
    return pd.concat(frames, ignore_index=True)
