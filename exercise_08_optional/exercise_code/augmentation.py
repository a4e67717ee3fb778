"""Data augmentation on MNIST digits with torchvision.transforms.v2. Given code.

Three pieces for the notebook:
- ``CANDIDATES`` and ``show_candidates``: fixed transforms applied to one digit of each class,
  to see which ones keep a digit's label and which ones break it;
- ``augmentation_explorer``: ipywidgets sliders for flip, crop, rotation, brightness/contrast;
- ``time_vs_space``: random augmentation at runtime vs an augmented copy made once offline.
"""

import io
import time
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

SIZE = 28
DIGIT_STYLE = {"cmap": "gray_r", "vmin": 0, "vmax": 1}
"""How digits are drawn, as in exercise 08's plots: 0 white, 1 black."""
GRID = 0.25
"""Grey level of the lines between the digits of a mosaic."""


def _corner_crop(image: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """Crop a size x size window and resize it back to 28 x 28 (what a random crop does)."""
    return F.resized_crop(image, top, left, size, size, [SIZE, SIZE], antialias=True)


# name -> a fixed transform of one image (1, 28, 28), float in [0, 1]
CANDIDATES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "horizontal flip": F.horizontal_flip,
    "vertical flip": F.vertical_flip,
    "rotate 15": lambda image: F.rotate(image, 15.0),
    "rotate 180": lambda image: F.rotate(image, 180.0),
    "crop 24x24": lambda image: _corner_crop(image, 2, 2, 24),
    "crop 10x10": lambda image: _corner_crop(image, 4, 4, 10),
    "brightness/contrast 30%": lambda image: F.adjust_contrast(
        F.adjust_brightness(image, 1.3), 0.7
    ),
}


def one_per_class(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The first image of each digit 0..9, shape (10, 1, 28, 28)."""
    return torch.stack([images[(labels == digit).nonzero()[0, 0]] for digit in range(10)])


def _mosaic(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows of images (each (K, 1, 28, 28)) as one (rows * 30, K * 30) picture, 2 px apart."""
    padded = [F.pad(row[:, 0], [1, 1, 1, 1], fill=GRID) for row in rows]
    return torch.cat([torch.cat(list(row), dim=1) for row in padded], dim=0)


def _show_mosaic(
    rows: dict[str, torch.Tensor], title: str, figsize: tuple[float, float]
) -> plt.Figure:
    """One picture of labelled rows of digits, columns labelled with the digit 0..9."""
    figure, axis = plt.subplots(figsize=figsize)
    axis.imshow(_mosaic(list(rows.values())), **DIGIT_STYLE)
    step = SIZE + 2
    columns = len(next(iter(rows.values())))
    axis.set_xticks([step * k + step / 2 for k in range(columns)])
    axis.set_xticklabels([f"label {k}" for k in range(columns)], fontsize=9)
    axis.xaxis.tick_top()
    axis.set_yticks([step * k + step / 2 for k in range(len(rows))])
    axis.set_yticklabels(list(rows), fontsize=9)
    axis.tick_params(length=0)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def show_candidates(digits: torch.Tensor) -> plt.Figure:
    """A grid: one row per transform in CANDIDATES, one column per digit 0..9."""
    rows = {"original": digits}
    rows.update({name: torch.stack([t(d) for d in digits]) for name, t in CANDIDATES.items()})
    return _show_mosaic(
        rows, "Which transforms keep a digit's label? (rows: transform, columns: digit)", (9, 7)
    )


def augment(
    digits: torch.Tensor,
    hflip: bool,
    vflip: bool,
    angle: float,
    crop: int,
    brightness: float,
    contrast: float,
) -> torch.Tensor:
    """The explorer's transform: flips, rotation, centered crop of crop x crop, then colour."""
    out = digits
    if hflip:
        out = F.horizontal_flip(out)
    if vflip:
        out = F.vertical_flip(out)
    out = F.rotate(out, float(angle))
    if crop < SIZE:
        out = F.resized_crop(
            out, (SIZE - crop) // 2, (SIZE - crop) // 2, crop, crop, [SIZE, SIZE], antialias=True
        )
    out = F.adjust_brightness(out, brightness)
    return F.adjust_contrast(out, contrast).clamp(0, 1)


def show_augmented(digits: torch.Tensor, **params) -> plt.Figure:
    """Originals (top row) and the same digits after ``augment(digits, **params)`` (bottom)."""
    settings = ", ".join(f"{key}={value}" for key, value in params.items())
    rows = {"original": digits, "augmented": augment(digits, **params)}
    return _show_mosaic(rows, f"Augmented digits: {settings}", (9, 2.6))


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def augmentation_explorer(digits: torch.Tensor) -> widgets.Widget:
    """Sliders and checkboxes for ``augment``; the picture below them follows as you move them.

    The picture is a PNG in an ``ipywidgets.Image`` that each change redraws.
    """
    style = {"description_width": "initial"}
    controls = {
        "hflip": widgets.Checkbox(value=False, description="horizontal flip"),
        "vflip": widgets.Checkbox(value=False, description="vertical flip"),
        "angle": widgets.IntSlider(
            value=0, min=-180, max=180, step=5, description="rotation (deg)", style=style
        ),
        "crop": widgets.IntSlider(
            value=28, min=8, max=28, step=1, description="crop size (px)", style=style
        ),
        "brightness": widgets.FloatSlider(
            value=1.0, min=0.2, max=2.0, step=0.1, description="brightness", style=style
        ),
        "contrast": widgets.FloatSlider(
            value=1.0, min=0.2, max=2.0, step=0.1, description="contrast", style=style
        ),
    }
    picture = widgets.Image(format="png")

    def redraw(_change: object = None) -> None:
        params = {name: control.value for name, control in controls.items()}
        picture.value = _png(show_augmented(digits, **params))

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox(
        [
            widgets.HBox(list(controls.values())[:3]),
            widgets.HBox(list(controls.values())[3:]),
            picture,
        ]
    )


def random_safe_augmentation() -> v2.Transform:
    """Two label-safe operations picked at random per image, each with random parameters.

    This is the idea of RandAugment (``v2.RandAugment``) restricted to operations that keep a
    digit's label: small rotations, mild crops, shifts, brightness and contrast.
    """
    safe = [
        v2.RandomRotation(15),
        v2.RandomResizedCrop(SIZE, scale=(0.7, 1.0), antialias=True),
        v2.RandomAffine(degrees=0, translate=(0.1, 0.1)),
        v2.ColorJitter(brightness=0.3, contrast=0.3),
    ]
    return v2.Compose([v2.RandomChoice(safe), v2.RandomChoice(safe)])


def time_vs_space(
    images: torch.Tensor, copies: int = 4, epochs: int = 2, seed: int = 0
) -> dict[str, float]:
    """Runtime augmentation vs an offline augmented copy: seconds and bytes of each.

    - runtime: every epoch draws new random augmentations of every image; it costs time each
      epoch and no extra memory, and the model never sees the same variant twice;
    - offline: ``copies`` augmented versions of every image are made once and stored; each epoch
      then only reads them (no augmentation time), but memory grows by ``copies`` times and the
      model sees only those few variants.

    Inputs:
    - images: uint8 tensor (N, 1, 28, 28)

    Returns a dict: images, copies, runtime_seconds_per_epoch, runtime_bytes (the images
    themselves), offline_build_seconds, offline_seconds_per_epoch, offline_bytes (the copies).
    """
    torch.manual_seed(seed)
    transform = random_safe_augmentation()
    start = time.perf_counter()
    for _ in range(epochs):
        for image in images:
            transform(image)
    runtime_seconds = (time.perf_counter() - start) / epochs
    start = time.perf_counter()
    offline = torch.stack([transform(image) for _ in range(copies) for image in images])
    offline_build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(epochs):
        offline[torch.randint(len(offline), (len(images),))]
    offline_epoch_seconds = (time.perf_counter() - start) / epochs
    return {
        "images": len(images),
        "copies": copies,
        "runtime_seconds_per_epoch": runtime_seconds,
        "runtime_bytes": images.nelement() * images.element_size(),
        "offline_build_seconds": offline_build_seconds,
        "offline_seconds_per_epoch": offline_epoch_seconds,
        "offline_bytes": offline.nelement() * offline.element_size(),
    }


def plot_time_vs_space(result: dict[str, float], epochs: int = 20) -> plt.Figure:
    """Total augmentation time over ``epochs`` epochs, and memory, of the two ways."""
    runtime_total = epochs * result["runtime_seconds_per_epoch"]
    offline_total = result["offline_build_seconds"] + epochs * result["offline_seconds_per_epoch"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = ["at runtime", f"offline ({result['copies']} copies)"]
    colors = ["tab:blue", "tab:orange"]
    left.bar(names, [runtime_total, offline_total], color=colors, label=names)
    left.set_ylabel("seconds spent augmenting")
    left.set_title(f"Time over {epochs} epochs ({result['images']} images)")
    left.legend()
    megabytes = [result["runtime_bytes"] / 1e6, result["offline_bytes"] / 1e6]
    right.bar(names, megabytes, color=colors, label=names)
    right.legend()
    right.set_ylabel("MB of images held in memory")
    right.set_title("Space (uint8 images)")
    figure.suptitle("Trading time for space: augment at runtime or once offline")
    figure.tight_layout()
    return figure


def check_label_breaking(answer: object) -> None:
    """Public check of the quiz answer: a set of names taken from CANDIDATES."""
    assert answer is not None, (
        "label_breaking is None: put the set of names into it in the answer cell above."
    )
    assert isinstance(answer, set), (
        f"label_breaking must be a set of names, not {type(answer).__name__}."
    )
    unknown = answer - set(CANDIDATES)
    assert not unknown, f"{sorted(unknown)} are not in CANDIDATES; copy names from the figure."
    assert answer, "label_breaking is empty: put the names of the label-breaking transforms in."
    print(f"label_breaking has {len(answer)} names from CANDIDATES (the hidden test checks them).")
