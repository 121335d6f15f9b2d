"""The in-memory shape every dataset is turned into: splits of uint8 images, labels, ids and groups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")


@dataclass
class ImageSplit:
    """One split of a binary image-classification dataset.

    images: uint8 array [N, H, W, 3] (may be a read-only np.memmap); never converted to float
        here, so memory stays at one byte per pixel until a batch is on the device.
    labels: int64 array [N] with values in {0, 1} (the target; 1 is the positive class).
    sample_ids: array [N] of str, the dataset's own ids (for CelebA, the file name).
    attributes: DataFrame with N rows, ground-truth attributes used only for evaluation
        (subgroup accuracy), never by training or weighting.
    """

    images: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray
    attributes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got {self.images.dtype} {self.images.shape}")
        if len(self.images) != n or len(self.sample_ids) != n:
            raise ValueError("images, labels and sample_ids must have the same length")
        if len(self.attributes) not in (0, n):
            raise ValueError("attributes must have one row per sample")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.sample_ids = np.asarray(self.sample_ids).astype(str)
        if self.attributes.empty:
            self.attributes = pd.DataFrame(index=range(n))
        self.attributes = self.attributes.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        """Side length in pixels (images are square)."""
        return int(self.images.shape[1])

    def subset(self, index: np.ndarray) -> ImageSplit:
        """The rows at `index` (copies the selected images into memory)."""
        index = np.asarray(index)
        return ImageSplit(
            images=np.ascontiguousarray(self.images[index]),
            labels=self.labels[index],
            sample_ids=self.sample_ids[index],
            attributes=self.attributes.iloc[index].reset_index(drop=True),
        )


@dataclass
class Dataset:
    """Train, validation and test splits plus what the rest of debias needs to know about them.

    group_columns: columns of `attributes` that define evaluation subgroups (crossed with the label
        they give the groups whose worst accuracy is reported).
    vae_on_all: True when every image is a face (attribute tasks such as CelebA's Blond_Hair), so
        the VAE terms train on every sample; False for face detection, where they train on
        positives (faces) only and negatives get uniform weights.
    target: human-readable name of the label (e.g. "face", "Blond_Hair").
    """

    name: str
    train: ImageSplit
    valid: ImageSplit
    test: ImageSplit
    group_columns: list[str]
    vae_on_all: bool
    target: str
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> ImageSplit:
        """The split called `name` (one of SPLITS)."""
        if name not in SPLITS:
            raise KeyError(name)
        return getattr(self, name)
