"""The optional exercise's data reader: training files only, a clear message when missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exercise_08_optional.exercise_code import data  # noqa: E402


def test_missing_training_files_say_to_run_exercise_08s_data_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="run the first data cell of exercise_08"):
        data.load_mnist_train()


def test_reads_the_training_files_alone_into_disjoint_reproducible_subsets(
    student_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(student_data_dir))
    images, labels = data.load_mnist_train()
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60_000,) and set(labels.unique().tolist()) == set(range(10))
    first = data.digit_subsets({"train": 300, "val": 200}, seed=1)
    again = data.digit_subsets({"train": 300, "val": 200}, seed=1)
    assert torch.equal(first["train"][0], again["train"][0])
    assert first["val"][0].shape == (200, 1, 28, 28) and first["val"][0].max() <= 1.0
    train_rows = {tuple(row) for row in first["train"][0].flatten(1)[:, ::7].tolist()}
    val_rows = {tuple(row) for row in first["val"][0].flatten(1)[:, ::7].tolist()}
    assert not train_rows & val_rows


def test_default_folder_is_data_next_to_the_exercise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert data.data_dir() == ROOT / "data"
