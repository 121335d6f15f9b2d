"""The one preprocessing step between stored images and the models.

Training, the latent pass that feeds the weights, evaluation and the report's reconstructions all
call `to_model_input`, so the latents describe exactly what training saw (the public reference
code computed its histograms on differently preprocessed images).
"""

from __future__ import annotations

import torch


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1].

    The permuted view of an NHWC tensor is already channels-last in memory, which is the fast
    layout for convolutions, so no copy is made besides the float conversion.
    """
    return batch.permute(0, 3, 1, 2).float().div_(255.0)
