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
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
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


def random_affine(
    images: torch.Tensor,
    degrees: float = 30.0,
    translate: float = 0.2,
    scale: float = 0.25,
    shear: float = 20.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random affine transformation drawn for EVERY image of a batch, in one call.

    torchvision's v2 transforms draw one set of parameters per call, so a batch of 64 unlabeled
    images would need 64 calls; here the parameters are drawn per image and applied to the whole
    batch at once with ``affine_grid`` / ``grid_sample``. Each image gets a rotation up to
    ``degrees``, a shear up to ``shear`` degrees, a scaling by a factor in [1 - scale, 1 + scale]
    and a shift up to ``translate`` of the image size in each direction (uniform draws).

    Inputs:
    - images: (N, 1, 28, 28) in [0, 1].
    - generator: the random draws' source (None: torch's global one).

    Returns the transformed images (N, 1, 28, 28), pixels outside the original set to 0.
    """
    n = len(images)

    def uniform() -> torch.Tensor:  # n values in [-1, 1]
        return torch.rand(n, generator=generator) * 2 - 1

    angle = uniform() * math.radians(degrees)
    factor = 1 + uniform() * scale
    skew = uniform() * math.radians(shear)
    shift_x, shift_y = uniform() * translate * 2, uniform() * translate * 2  # grid spans [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrix = torch.stack(
        [
            torch.stack([cos / factor, (skew - sin) / factor, shift_x], dim=1),
            torch.stack([sin / factor, cos / factor, shift_y], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def cutout(
    images: torch.Tensor, size: int = 12, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Set a square of ``size`` x ``size`` pixels (clipped at the border) to 0 in every image,
    at a random place per image. images (N, 1, H, W); returns a new tensor of the same shape."""
    n, _, height, width = images.shape
    centre_y = torch.randint(0, height, (n, 1, 1), generator=generator)
    centre_x = torch.randint(0, width, (n, 1, 1), generator=generator)
    rows = torch.arange(height).view(1, height, 1)
    columns = torch.arange(width).view(1, 1, width)
    square = ((rows - centre_y).abs() <= size // 2) & ((columns - centre_x).abs() <= size // 2)
    return images * (~square).unsqueeze(1)


def strong_augmentation(
    images: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The strong augmentation of the consistency loss (``training.consistency_loss``): a
    random affine transformation per image, twice as strong as ``digit_augmentation`` and
    sheared, then a 12 x 12 cutout. Many such images are hard to read, which is the point: the
    model must give them the class it gives the untouched image. images (N, 1, 28, 28)."""
    return cutout(random_affine(images, generator=generator), 12, generator)
