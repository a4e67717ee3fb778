"""Data augmentation for digits with torchvision.transforms.v2 (given).

Augmentation (lecture: data augmentation) makes new training images from old ones with
transformations that keep the label: a digit shifted by two pixels, rotated by ten degrees or
scaled a little is still the same digit. The transformations are drawn at random every time an
image is used (at runtime), so the network rarely sees the same picture twice. Evaluation never
augments.

Some transformations break labels on digits: a horizontal flip turns a 2 into a mirror image
that is no digit, a rotation by 180 degrees turns a 6 into a 9, and a crop that cuts off the top
of a 7 may leave a 1. Strong augmentation hurts as soon as it changes what the image shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torchvision.transforms import v2

Transform = Callable[[torch.Tensor], torch.Tensor]


def digit_augmentation(strength: float = 1.0) -> v2.Transform:
    """Label-preserving augmentation for digits: a small random affine transformation.

    At strength 1: rotation up to 10 degrees, shift up to 10% (about 3 pixels) in each
    direction, scaling between 0.9 and 1.1. No flips: they do not preserve digits.

    Input and output of the returned transform: images (..., 1, 28, 28) in [0, 1].
    """
    return v2.RandomAffine(
        degrees=10 * strength,
        translate=(0.1 * strength, 0.1 * strength),
        scale=(1 - 0.1 * strength, 1 + 0.1 * strength),
    )


def label_breaking_augmentations() -> dict[str, v2.Transform]:
    """For illustration only: transformations that can change which digit an image shows."""
    return {
        "flipped": v2.RandomHorizontalFlip(p=1.0),
        "rotated 180°": v2.RandomRotation(degrees=(180, 180)),
        "cropped": v2.RandomResizedCrop(28, scale=(0.3, 0.35), ratio=(1.0, 1.0)),
    }


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run tiny per-image operations on one thread: thread start-up costs more than they do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def augment_batch(
    images: torch.Tensor, transform: Transform | None, group_size: int = 1
) -> torch.Tensor:
    """Apply ``transform`` to the batch (N, 1, 28, 28), drawing new randomness per group.

    torchvision's v2 transforms draw ONE set of random parameters per call, so calling them on
    a whole batch would shift or rotate all its images the same way. Here every group of
    ``group_size`` images gets its own call: 1 gives every image its own transformation, a
    larger group is faster (useful for tens of thousands of images) and less varied.
    None returns the images unchanged.
    """
    if transform is None:
        return images
    with _one_thread():
        return torch.cat([transform(group) for group in images.split(group_size)])
