"""Plots and the latent-space explorer of the notebook (given).

Every function draws one matplotlib figure and returns it; images are float32 (N, 1, 28, 28)
in [0, 1], shown as grids of digits, dark ink on white (``DIGIT_STYLE``, the same in both
notebooks). A plot that fails part-way closes its figure, so no empty figure is left behind
under the error message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from matplotlib.figure import Figure

from .training import History, predict

DIGIT_STYLE = {"cmap": "gray_r", "vmin": 0, "vmax": 1}
"""How every digit is drawn: 0 white, 1 black."""


def closes_on_error(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Close the figures ``plot`` opened if it raises, so that Jupyter shows no empty figure."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs) -> Figure:
        before = set(plt.get_fignums())
        try:
            return plot(*args, **kwargs)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise

    return wrapper


@closes_on_error
def show_digits(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    title: str = "",
    ncols: int = 10,
    size: float = 1.1,
) -> Figure:
    """A grid of digits with an optional caption above each one.

    Inputs:
    - images: (N, 1, 28, 28) in [0, 1].
    - titles: N captions (e.g. labels), or None.
    - title: the figure's title.
    """
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i, 0].detach().cpu(), **DIGIT_STYLE)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@closes_on_error
def plot_histories(
    histories: dict[str, History],
    key: str = "loss",
    title: str = "",
    ylabel: str = "loss",
    xlabel: str = "epoch",
    marker: tuple[int, str] | None = None,
) -> Figure:
    """Training (solid) and validation (dashed) curves of one or more runs.

    Inputs:
    - histories: run name -> history with "train_<key>" and optionally "val_<key>" lists.
    - key: "loss" or "acc".
    - marker: (epoch, label) draws a vertical line after that epoch, e.g. where fine-tuning
      starts.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, history), color in zip(histories.items(), plt.cm.tab10.colors, strict=False):
        train, val = history.get(f"train_{key}", []), history.get(f"val_{key}", [])
        epochs = range(1, len(train) + 1)
        ax.plot(epochs, train, color=color, label=f"{name}: train")
        if val:
            ax.plot(range(1, len(val) + 1), val, color=color, linestyle="--", label=f"{name}: val")
        if "best_epoch" in history and val:
            best = history["best_epoch"]
            ax.plot(best + 1, val[best], marker="o", color=color)
    if marker is not None:
        ax.axvline(marker[0] + 0.5, color="gray", linestyle=":", label=marker[1])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


@closes_on_error
def plot_autoencoder_history(history: History, loss_name: str = "l2") -> Figure:
    """The autoencoder's training: the loss of every batch (left, log scale) and the training
    and validation loss per epoch (right).

    Inputs:
    - history: what train_autoencoder returned ("batch_loss", "train_loss", "val_loss").
    - loss_name: the reconstruction loss, for the axis labels.
    """
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(history["batch_loss"], alpha=0.7)
    left.set(
        title="Autoencoder: loss of every training batch",
        xlabel="training step",
        ylabel=f"{loss_name} loss",
        yscale="log",
    )
    right.plot(epochs, history["train_loss"], marker="o", label="train")
    right.plot(epochs, history["val_loss"], marker="o", linestyle="--", label="val (held out)")
    right.set(title="Autoencoder: loss per epoch", xlabel="epoch", ylabel=f"{loss_name} loss")
    right.legend()
    fig.tight_layout()
    return fig


@closes_on_error
@torch.no_grad()
def show_reconstructions(autoencoder: torch.nn.Module, images: torch.Tensor) -> Figure:
    """Inputs (top row) above their reconstructions (bottom row). images: (N, 1, 28, 28)."""
    autoencoder.eval()
    reconstructions = autoencoder(images)
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.1, 2.6), squeeze=False)
    for i in range(n):
        for row, batch in enumerate((images, reconstructions)):
            axes[row, i].imshow(batch[i, 0], **DIGIT_STYLE)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("output")
    fig.suptitle("Autoencoder: inputs (top) and their reconstructions (bottom)")
    fig.tight_layout()
    return fig


@closes_on_error
def show_mistakes(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    max_images: int = 20,
    title: str = "",
) -> Figure:
    """The images a classifier gets wrong, captioned "true -> predicted"."""
    predicted = predict(model, images).argmax(dim=1)
    wrong = (predicted != labels).nonzero().flatten()[:max_images]
    titles = [f"{labels[i]} -> {predicted[i]}" for i in wrong]
    heading = title or f"Misclassified: {int((predicted != labels).sum())} of {len(labels)}"
    return show_digits(images[wrong], titles, title=heading + " (true -> predicted)")


@closes_on_error
def plot_accuracies(results: dict[str, dict[str, float]], title: str = "") -> Figure:
    """Grouped bars: one group per data split, one bar per model; the legend sits below the
    axes, where it covers no bar.

    Inputs:
    - results: model name -> {split name -> accuracy in [0, 1]}.
    """
    models = list(results)
    splits = list(next(iter(results.values())))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, name in enumerate(models):
        xs = [s + k * width for s in range(len(splits))]
        bars = ax.bar(xs, [results[name][split] for split in splits], width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([s + width * (len(models) - 1) / 2 for s in range(len(splits))], splits)
    ax.set(title=title, ylabel="accuracy", ylim=(0, 1.08))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(models), frameon=False)
    fig.tight_layout()
    return fig


@torch.no_grad()
def interpolate(
    autoencoder: torch.nn.Module, start: torch.Tensor, end: torch.Tensor, steps: int = 9
) -> torch.Tensor:
    """Decode points on the straight line between the latent codes of two images.

        z(t) = (1 - t) * encoder(start) + t * encoder(end),   t = 0, 1/(steps-1), ..., 1

    Inputs:
    - start, end: single images (1, 28, 28).

    Returns the decoded images (steps, 1, 28, 28).
    """
    autoencoder.eval()
    codes = autoencoder.encoder(torch.stack([start, end]))
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return autoencoder.decoder((1 - t) * codes[0] + t * codes[1])


@closes_on_error
def show_interpolation(
    autoencoder: torch.nn.Module, start: torch.Tensor, end: torch.Tensor, steps: int = 9
) -> Figure:
    """A row of decoded images walking through latent space from one digit to another."""
    decoded = interpolate(autoencoder, start, end, steps)
    titles = [f"t={t:.2f}" for t in torch.linspace(0, 1, steps).tolist()]
    return show_digits(
        decoded, titles, ncols=steps, title="Decoder output along the line between two codes"
    )


@closes_on_error
@torch.no_grad()
def _draw_explorer(
    autoencoder: torch.nn.Module,
    images: torch.Tensor,
    labels: Sequence[int],
    a: int,
    b: int,
    t: float,
) -> Figure:
    """Image a, its reconstruction, the decoded mix at t, image b: the explorer's picture."""
    autoencoder.eval()
    codes = autoencoder.encoder(images[[a, b]])
    mixed = autoencoder.decoder(((1 - t) * codes[0] + t * codes[1]).unsqueeze(0))[0]
    panels = [
        (images[a], f"image A (a {labels[a]})"),
        (autoencoder(images[[a]])[0], "A reconstructed"),
        (mixed, f"decoded at t={t:.2f}"),
        (images[b], f"image B (a {labels[b]})"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(8, 2.4))
    for ax, (image, caption) in zip(axes, panels, strict=True):
        ax.imshow(image[0], **DIGIT_STYLE)
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    fig.suptitle("Latent-space explorer: z(t) = (1 - t) z_A + t z_B")
    fig.tight_layout()
    return fig


def latent_explorer(
    autoencoder: torch.nn.Module, images: torch.Tensor, labels: Sequence[int]
) -> widgets.Widget:
    """Sliders to pick two images and move along the line between their latent codes.

    Inputs:
    - autoencoder: a trained Autoencoder.
    - images: (N, 1, 28, 28) to choose from; labels: their N labels (shown as captions).

    Returns the widget (the notebook displays it).
    """
    labels = [int(label) for label in labels]
    pick_a = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image A")
    other_digit = next((i for i, label in enumerate(labels) if label != labels[0]), 0)
    pick_b = widgets.IntSlider(value=other_digit, min=0, max=len(images) - 1, description="image B")
    mix = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t")
    output = widgets.Output()

    def redraw(change: object = None) -> None:
        with output:
            output.clear_output(wait=True)
            fig = _draw_explorer(autoencoder, images, labels, pick_a.value, pick_b.value, mix.value)
            display(fig)
            plt.close(fig)

    for slider in (pick_a, pick_b, mix):
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([pick_a, pick_b, mix]), output])
