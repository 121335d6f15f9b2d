"""Training, encoding and prediction loops. Everything they use comes in as an argument.

Images stay uint8 [N, H, W, 3] (in memory or memory-mapped) until a batch is on the device;
`debias.models.to_model_input` is the single preprocessing step, shared by training, the latent pass that
feeds the histograms, and evaluation, so the latents describe exactly what training sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from debias.models.inputs import to_model_input

Criterion = Callable[[dict, torch.Tensor, torch.Tensor], dict]


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def iterate_batches(
    images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) on `device` for `indices` in consecutive batches."""
    pin = device.type == "cuda"
    for start in range(0, len(indices), batch_size):
        # Sorted rows read a memory-mapped cache sequentially; order inside a batch is irrelevant.
        rows = np.sort(indices[start : start + batch_size])
        x = torch.from_numpy(np.ascontiguousarray(images[rows]))
        y = torch.from_numpy(labels[rows])
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)


def forward_kwargs(criterion: Criterion, y: torch.Tensor) -> dict:
    """What `criterion` asks the model's forward for besides the images (DBVAELoss: the rows to decode)."""
    ask = getattr(criterion, "forward_kwargs", None)
    return {} if ask is None else ask(y)


def train_one_epoch(
    model: nn.Module,
    criterion: Criterion,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    amp: bool = False,
    progress: tqdm | None = None,
) -> dict[str, float]:
    """One pass over `batches` of (uint8 images [B, H, W, 3], labels [B]); returns the mean of each loss term.

    `batches` is `iterate_batches(...)` over the rows drawn for this epoch, or any DataLoader that
    yields the same pairs (the `sampler` model of a fit trains from a plain DataLoader with a
    WeightedRandomSampler, as a user's own pipeline would).
    """
    model.train()
    # Sums stay on the device: converting each term to a Python float every step would wait for
    # the GPU at every batch. The progress bar reads the loss only every few steps for the same reason.
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    for x_uint8, y in batches:
        x_uint8, y = x_uint8.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = to_model_input(x_uint8)
        with autocast(device, amp):
            outputs = model(x, **forward_kwargs(criterion, y))
        terms = criterion(outputs, x, y)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        n = len(y)
        seen += n
        for name, value in terms.items():
            sums[name] = sums.get(name, 0) + value.detach() * n
        sums["accuracy"] = sums.get("accuracy", 0) + ((outputs["logit"].detach() > 0).long() == y).sum()
        if progress is not None:
            progress.update(1)
            if progress.n % 20 == 1:
                progress.set_postfix(loss=f"{float(terms['total'].detach()):.3f}", refresh=False)
    return {name: float(total) / max(seen, 1) for name, total in sums.items()}


class UInt8ImageDataset(torch.utils.data.Dataset):
    """(uint8 image [H, W, 3], label) pairs over arrays, for DataLoader-based loops; no copy is made."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.array(self.images[i])), torch.tensor(int(self.labels[i]))


@contextlib.contextmanager
def evaluation_mode(model: nn.Module):
    """Put `model` in eval mode and restore its previous mode afterwards, whatever happens.

    Leaving batch norm in eval mode after a latent pass would silently change the rest of
    training (a defect of the public reference code).
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def encode_all(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: bool = False,
    only: np.ndarray | None = None,
) -> torch.Tensor:
    """Latent means mu [N, k] (float32, on `device`) of every image, in inference mode.

    `only` (bool [N]) encodes just those rows and leaves NaN in the others. Each batch is then
    the chosen rows of one block of `batch_size` images, so a shard of whole blocks
    (debias.distributed.shard with align=batch_size) runs the batches a single process runs.
    """
    index = np.arange(len(images))
    dummy = np.zeros(len(images), dtype=np.int64)
    # Written in place, not gathered as a list of per-batch tensors: small tensors kept alive between
    # the large transient batches stop glibc from reusing freed heap, which grew a CelebA-size pass by
    # ~0.4 GiB (BENCHMARKS.md, "Fit speed").
    fill = float("nan") if only is not None else 0.0
    latents = torch.full((len(images), model.latent_dim), fill, device=device)
    with evaluation_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            rows = index[start : start + batch_size]
            if only is not None:
                rows = rows[only[rows]]
            # one batch of sorted rows, in the order iterate_batches yields them
            for x_uint8, _ in iterate_batches(images, dummy, rows, batch_size, device):
                with autocast(device, amp):
                    _, mu, _ = model.encode(to_model_input(x_uint8))
                latents[torch.from_numpy(rows).to(device)] = mu.float()
    return latents


def predict_proba(
    model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device, amp: bool = False
) -> np.ndarray:
    """Probability of the positive class for every image, as a float64 numpy array [N]."""
    index = np.arange(len(images))
    dummy = np.zeros(len(images), dtype=np.int64)
    probs = torch.empty(len(images), dtype=torch.float64)  # in place, as in encode_all
    start = 0
    with evaluation_mode(model), torch.inference_mode():
        for x_uint8, _ in iterate_batches(images, dummy, index, batch_size, device):
            with autocast(device, amp):
                logit = model.classify(to_model_input(x_uint8))
            probs[start : start + len(logit)] = torch.sigmoid(logit.float()).cpu()
            start += len(logit)
    return probs.numpy()
