"""Shared fixtures: the prepared MNIST folder and isolated copies of it."""

import os
import shutil
from pathlib import Path

# Test files run side by side (pytest-xdist), each with notebooks and graders of its own: one
# compute thread per process, or PyTorch's threads wait on each other (set before torch loads;
# kernels and sandboxes started by the tests inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def prepared_data_dir() -> Path:
    """The repository's ``data/``, prepared once (instructor side, hidden test included)."""
    from autograder import data

    data.prepare(DATA_DIR, log=lambda message: None)
    return DATA_DIR


@pytest.fixture
def student_data_dir(prepared_data_dir: Path, tmp_path: Path) -> Path:
    """A fresh data folder with copies of the verified training files only (no splits, no test)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TRAIN_FILES:
        shutil.copyfile(prepared_data_dir / "MNIST" / "raw" / name, raw / name)
    return tmp_path / "data"
