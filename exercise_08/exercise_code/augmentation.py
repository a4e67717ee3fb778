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

from torchvision.transforms import v2


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
