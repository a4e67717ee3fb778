"""Experiments around dropout and normalization layers, for the notebook. Given code.

- ``original_vs_inverted``: the two ways of making dropout's expectation match at test time;
- ``batch_independence``: batch norm at test time treats every sample on its own;
- ``NORM_FAMILY`` / ``norm_family_table`` / ``plot_norm_family``: batch, layer, instance and
  group norm on an image batch (N, C, H, W), and which entries share their statistics.
"""

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch, Rectangle
from torch import nn


def original_vs_inverted(
    dropout_forward: Callable, x: np.ndarray, p: float = 0.5, trials: int = 20_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Average training outputs of both dropout variants over many masks, and their test outputs.

        original:  train  out = x * keep,             test  out = (1 - p) * x
        inverted:  train  out = x * keep / (1 - p),   test  out = x    (keep ~ Bernoulli(1 - p))

    Both make E[train output] equal the test output; inverted dropout does the scaling at
    training time, so the test-time network is the plain one.

    Inputs:
    - dropout_forward: your inverted dropout
    - x: activations of shape (D,)

    Returns a dict of arrays of shape (D,).
    """
    batch = np.tile(x, (trials, 1))
    inverted_train, _ = dropout_forward(batch, {"mode": "train", "p": p, "seed": seed})
    inverted_test, _ = dropout_forward(x, {"mode": "test", "p": p})
    keep = np.random.default_rng(seed + 1).random(batch.shape) >= p
    return {
        "x": x,
        "original: mean of train outputs": (batch * keep).mean(axis=0),
        "original: test output (1-p) x": (1 - p) * x,
        "inverted: mean of train outputs": np.asarray(inverted_train).mean(axis=0),
        "inverted: test output x": np.asarray(inverted_test),
    }


def batch_independence(batchnorm_forward: Callable, d: int = 4, seed: int = 0) -> dict[str, float]:
    """How much one sample's batch-norm output changes when its batch companions change.

    Fills the running statistics with a few training batches, then puts the same sample x0 into
    two different batches, in training mode and in test mode.

    Returns the largest change of x0's output in each mode.
    """
    rng = np.random.default_rng(seed)
    gamma, beta = np.ones(d), np.zeros(d)
    bn_param = {"mode": "train"}
    for _ in range(50):
        batchnorm_forward(rng.normal(2.0, 3.0, size=(32, d)), gamma, beta, bn_param)
    x0 = rng.normal(2.0, 3.0, size=(1, d))
    batch_a = np.vstack([x0, rng.normal(2.0, 3.0, size=(7, d))])
    batch_b = np.vstack([x0, rng.normal(-5.0, 1.0, size=(7, d))])
    changes = {}
    for mode in ("train", "test"):
        param = dict(bn_param, mode=mode, momentum=0.0)
        out_a, _ = batchnorm_forward(batch_a, gamma, beta, param)
        out_b, _ = batchnorm_forward(batch_b, gamma, beta, param)
        alone = batchnorm_forward(x0, gamma, beta, param)[0] if mode == "test" else None
        changes[mode] = float(np.abs(out_a[0] - out_b[0]).max())
        if alone is not None:
            changes["test, batch of one vs batch a"] = float(np.abs(alone[0] - out_a[0]).max())
    return changes


# name -> (module for inputs of shape (N, C, H, W) given (C, H, W),
#          function (N, C) -> group id of each (sample, channel) cell)
NORM_FAMILY: dict[str, tuple[Callable[[tuple], nn.Module], Callable[[int, int], np.ndarray]]] = {
    "batch norm": (
        lambda shape: nn.BatchNorm2d(shape[0], affine=False),
        lambda n, c: np.tile(np.arange(c), (n, 1)),
    ),
    "layer norm": (
        lambda shape: nn.LayerNorm(shape, elementwise_affine=False),
        lambda n, c: np.repeat(np.arange(n)[:, None], c, axis=1),
    ),
    "instance norm": (
        lambda shape: nn.InstanceNorm2d(shape[0]),
        lambda n, c: np.arange(n * c).reshape(n, c),
    ),
    "group norm (2 groups)": (
        lambda shape: nn.GroupNorm(2, shape[0], affine=False),
        lambda n, c: np.arange(n)[:, None] * 2 + (np.arange(c)[None, :] * 2) // c,
    ),
}


def norm_family_table(x: torch.Tensor) -> list[dict[str, object]]:
    """Apply each member of NORM_FAMILY to x (N, C, H, W) and check its normalized groups.

    For every group of cells that the picture says share one mean and variance (each cell is
    the H x W map of one sample and one channel), the output should have mean 0 and std 1.
    Layer norm of an image is ``nn.LayerNorm([C, H, W])`` (``nn.GroupNorm(1, C)`` computes the
    same); instance norm is group norm with C groups, batch norm the only one that mixes samples.

    Returns one row per method: its name, the axes it averages over, the number of groups, and
    the largest |mean| and |std - 1| over its groups.
    """
    n, c = x.shape[:2]
    axes = {
        "batch norm": "N, H, W",
        "layer norm": "C, H, W",
        "instance norm": "H, W",
        "group norm (2 groups)": "C/2, H, W",
    }
    rows = []
    for name, (make, groups_of) in NORM_FAMILY.items():
        out = make(tuple(x.shape[1:])).train()(x).detach()
        groups = torch.from_numpy(groups_of(n, c))
        means, stds = [], []
        for group in groups.unique():
            values = out[groups == group]
            means.append(values.mean().abs().item())
            stds.append(abs(values.std(unbiased=False).item() - 1))
        rows.append(
            {
                "method": name,
                "statistics over": axes[name],
                "groups": len(means),
                "max |mean|": max(means),
                "max |std - 1|": max(stds),
            }
        )
    return rows


def plot_norm_family(n: int = 4, c: int = 8) -> plt.Figure:
    """Which cells share one mean and variance: one panel per method, cells = (sample, channel).

    Each cell stands for all H x W pixels of one channel of one image; cells of the same colour
    are normalized together (the picture of Wu & He, "Group Normalization", 2018, seen from
    above with H and W folded into each cell).
    """
    figure, axes = plt.subplots(1, len(NORM_FAMILY), figsize=(13, 3.2), sharey=True)
    palette = ListedColormap(plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors)
    for axis, (name, (_, groups_of)) in zip(axes, NORM_FAMILY.items(), strict=True):
        groups = groups_of(n, c)
        axis.imshow(groups % palette.N, cmap=palette, vmin=0, vmax=palette.N - 1)
        rows, columns = np.nonzero(groups == groups[0, 0])
        corner = (columns.min() - 0.5, rows.min() - 0.5)
        size = (columns.max() - columns.min() + 1, rows.max() - rows.min() + 1)
        axis.add_patch(Rectangle(corner, *size, fill=False, edgecolor="black", linewidth=3))
        axis.set_title(name)
        axis.set_xlabel("channel C")
        axis.set_xticks(range(c))
        axis.set_yticks(range(n))
    axes[0].set_ylabel("sample N")
    handles = [
        Patch(facecolor="lightgray", label="one cell = the H x W pixels of one (sample, channel)"),
        Patch(facecolor="tab:blue", label="same colour = one mean and variance"),
        Patch(facecolor="white", edgecolor="black", linewidth=2, label="the first such group"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=3)
    figure.suptitle("Normalizing an image batch (N, C, H, W): which entries share statistics")
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    return figure
