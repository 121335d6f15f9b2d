"""flip_and_shift: each image flipped or not and shifted by at most 4 pixels with edges repeated, reproducibly."""

import numpy as np
import torch

from debias.augment import MAX_SHIFT, augmented, flip_and_shift
from debias.sampling import epoch_generator


def distinct_pixels(n: int, size: int = 12) -> torch.Tensor:
    """n images [size, size, 3] whose pixels all differ within an image (so a shift can be recovered)."""
    base = np.arange(size * size).reshape(size, size)
    channels = np.stack([base, base[::-1], (base + 7) % 256], axis=-1)
    return torch.from_numpy(np.repeat(channels[None], n, axis=0).astype(np.uint8))


def moved(image: np.ndarray, flip: bool, dy: int, dx: int) -> np.ndarray:
    """The expected result, written the plain way: mirror, pad by repeating the edge, then crop."""
    h, w, _ = image.shape
    if flip:
        image = image[:, ::-1]
    m = MAX_SHIFT
    padded = np.pad(image, ((m, m), (m, m), (0, 0)), mode="edge")
    return padded[m + dy : m + dy + h, m + dx : m + dx + w]


def test_every_image_is_its_original_flipped_or_not_and_shifted_by_at_most_four_pixels():
    images = distinct_pixels(64)
    out = flip_and_shift(images, epoch_generator(0, 1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    seen = set()
    for original, result in zip(images.numpy(), out.numpy(), strict=True):
        matches = [
            (flip, dy, dx)
            for flip in (False, True)
            for dy in range(-MAX_SHIFT, MAX_SHIFT + 1)
            for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)
            if np.array_equal(moved(original, flip, dy, dx), result)
        ]
        assert len(matches) == 1, matches
        seen.add(matches[0])
    flips = {flip for flip, _, _ in seen}
    assert flips == {False, True}
    assert len(seen) > 20  # 64 images draw from 162 (flip, dy, dx) moves: not one fixed move


def test_the_same_generator_seed_gives_the_same_images_and_labels_pass_through():
    images, labels = distinct_pixels(16), torch.arange(16)
    first = list(augmented([(images, labels)], epoch_generator(3, 2, stream=50)))
    second = list(augmented([(images, labels)], epoch_generator(3, 2, stream=50)))
    other = list(augmented([(images, labels)], epoch_generator(3, 3, stream=50)))
    assert torch.equal(first[0][0], second[0][0])
    assert torch.equal(first[0][1], labels)
    assert not torch.equal(first[0][0], other[0][0])
