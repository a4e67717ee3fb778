"""Models that memorize images instead of learning: the cheat the private hidden set must defeat.

:func:`public_test_lookup` stores labeled images (e.g. the public MNIST test set) in the weights
of a model that follows the exercise's rules (linear layers, elementwise operations, softmax) and
answers with the labels of the stored images nearest to its input:

    d_m(x)   = |P x|^2 - 2 (P x) . s_m + |s_m|^2          squared distance to stored image m
    logits(x) = Y^T softmax(-beta * d(x))                  (N, 10)

with ``s_m`` the stored (projected) images, ``Y`` their one-hot labels (M, 10) and ``P`` a fixed
k x k average pooling written as a linear layer (identity when the images fit at full size). A
large ``beta`` makes it a lookup (the label of the nearest stored image); a small one a soft
nearest-neighbour vote. The model exports with ``torch.export`` with a dynamic batch dimension.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = (1, 2, 4)
"""The resolutions tried, finest first: 28 x 28, 14 x 14 and 7 x 7 pixels."""


class NearestStoredImages(nn.Module):
    """Soft nearest neighbour over stored images; forward maps (N, 1, 28, 28) to (N, 10)."""

    def __init__(self, stored: torch.Tensor, labels: torch.Tensor, pooling: int, beta: float):
        """stored: float32 (M, 28, 28) in [0, 1]; labels: int64 (M,); pooling: 1, 2 or 4."""
        super().__init__()
        side = 28 // pooling
        self.project = nn.Identity()
        if pooling > 1:
            self.project = nn.Linear(28 * 28, side * side, bias=False)
            eye = torch.eye(28 * 28).view(28 * 28, 1, 28, 28)
            self.project.weight.data = F.avg_pool2d(eye, pooling).view(28 * 28, side * side).T
        projected = self.project(stored.reshape(len(stored), -1))  # (M, D)
        self.distance = nn.Linear(side * side, len(stored))  # |s_m|^2 - 2 x . s_m
        self.distance.weight.data = -2 * projected
        self.distance.bias.data = (projected * projected).sum(1)
        self.vote = nn.Linear(len(stored), 10, bias=False)  # weight Y^T
        self.vote.weight.data = F.one_hot(labels, 10).float().T
        self.beta = float(beta)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.project(images.flatten(1))  # (N, D)
        squared = (features * features).sum(1, keepdim=True)  # (N, 1)
        distances = squared + self.distance(features)  # (N, M)
        return self.vote(torch.softmax(-self.beta * distances, dim=1))


def stored_parameters(count: int, pooling: int) -> int:
    """Numbers a lookup of ``count`` images at ``pooling`` stores (projection included)."""
    side = (28 // pooling) ** 2
    projection = 0 if pooling == 1 else 28 * 28 * side
    return projection + count * (side + 1 + 10)


def public_test_lookup(
    images_uint8: np.ndarray,
    labels: np.ndarray,
    max_parameters: int = 5_000_000,
    beta: float = 1000.0,
) -> nn.Module:
    """A model that memorizes ``images_uint8`` with their ``labels`` (a lookup, see the module).

    Inputs:
    - images_uint8: uint8 (M, 28, 28), the images to memorize; labels: ints (M,).
    - max_parameters: at most this many stored numbers. All images are kept at the finest
      resolution at which they fit; if none fits, as many as fit (the first ones) at 7 x 7.
    - beta: sharpness; the default makes it return the label of the nearest stored image.

    Returns a module mapping float32 (N, 1, 28, 28) in [0, 1] to (N, 10) class probabilities.
    """
    count = len(images_uint8)
    pooling = next((k for k in POOLINGS if stored_parameters(count, k) <= max_parameters), 4)
    per_image = stored_parameters(1, pooling) - stored_parameters(0, pooling)
    keep = min(count, (max_parameters - stored_parameters(0, pooling)) // per_image)
    if keep <= 0:
        raise ValueError(f"max_parameters={max_parameters:,} is too small to store one image.")
    stored = torch.from_numpy(np.asarray(images_uint8[:keep], dtype=np.float32) / 255.0)
    targets = torch.from_numpy(np.asarray(labels[:keep], dtype=np.int64))
    return NearestStoredImages(stored, targets, pooling, beta).eval()
