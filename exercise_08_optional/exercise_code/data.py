"""MNIST training digits for the regularization lab. Given code.

This reads the IDX training files that exercise_08's notebook prepares (its first data cell),
from the course data folder: the environment variable COURSE_DATA_DIR if it is set, else the
folder ``data`` next to ``exercise_08_optional``. Only the 60,000 training images are read; the
lab picks small disjoint subsets of them, so its experiments run in seconds.
"""

import functools
import os
from pathlib import Path

import numpy as np
import torch

IMAGES_FILE = "train-images-idx3-ubyte"
LABELS_FILE = "train-labels-idx1-ubyte"


def data_dir() -> Path:
    """The course data folder (COURSE_DATA_DIR, else <folder holding exercise_08_optional>/data)."""
    return Path(os.environ.get("COURSE_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """An uncompressed IDX file (big-endian header: magic, then one int32 per dimension)."""
    raw = path.read_bytes()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path} is not an MNIST IDX file (magic {found}): prepare it again.")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@functools.cache
def _load(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = folder / "MNIST" / "raw"
    if not (raw / IMAGES_FILE).is_file() or not (raw / LABELS_FILE).is_file():
        raise FileNotFoundError(
            f"The MNIST training files are not in {raw}: run the first data cell of "
            "exercise_08/autoencoder.ipynb (it prepares them) and run this cell again."
        )
    images = _read_idx(raw / IMAGES_FILE, 2051)
    labels = _read_idx(raw / LABELS_FILE, 2049)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_mnist_train() -> tuple[torch.Tensor, torch.Tensor]:
    """All 60,000 training digits.

    Returns a tuple of:
    - images: uint8 tensor of shape (60000, 1, 28, 28), pixel values 0..255
    - labels: int64 tensor of shape (60000,), digits 0..9
    """
    return _load(data_dir().resolve())


def digit_subsets(sizes: dict[str, int], seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Disjoint random subsets of the training digits, e.g. {"train": 1000, "val": 1000}.

    Returns a dict name -> (images, labels), images float32 of shape (n, 1, 28, 28) in [0, 1]
    and labels int64 of shape (n,). The same sizes and seed always give the same subsets.
    """
    images, labels = load_mnist_train()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    subsets, start = {}, 0
    for name, size in sizes.items():
        index = order[start : start + size]
        subsets[name] = (images[index].float() / 255, labels[index])
        start += size
    return subsets
