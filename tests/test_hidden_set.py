"""The private hidden test set: made from the official test set with the course's secret key."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lookup_models import public_test_lookup, stored_parameters

from autograder import data
from autograder.exercise_modules import exercise_code_module

mnist_files = exercise_code_module("exercise_08", "mnist_files")
model_rules = exercise_code_module("exercise_08", "model_rules")
PASS_ACCURACY = 0.55
KEY_A, KEY_B = bytes(range(32)), bytes(range(100, 132))


def official_test_set(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = data_dir / "MNIST" / "raw"
    images = mnist_files.read_idx(raw / "t10k-images-idx3-ubyte")
    return images, mnist_files.read_idx(raw / "t10k-labels-idx1-ubyte").astype(np.int64)


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of ``model`` on uint8 images (N, 28, 28), fed as float32 (N, 1, 28, 28)."""
    with torch.no_grad():
        predicted = torch.cat(
            [
                model(torch.from_numpy(part.astype(np.float32) / 255.0)[:, None]).argmax(1)
                for part in np.array_split(images, max(1, len(images) // 1000))
            ]
        )
    return float((predicted.numpy() == labels).mean())


def quiet(message: str) -> None:
    pass


@pytest.fixture
def hidden_data_dir(prepared_data_dir: Path, tmp_path: Path) -> Path:
    """A data folder with copies of the official test files only (no key, no hidden set)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.TEST_PINS:
        shutil.copyfile(prepared_data_dir / "MNIST" / "raw" / name, raw / name)
    return tmp_path / "data"


def test_hidden_set_is_the_official_test_set_distorted_and_shuffled_by_the_key(prepared_data_dir):
    images, labels = data.load_hidden_set(prepared_data_dir)
    official_images, official_labels = official_test_set(prepared_data_dir)
    derived, derived_labels, order = data.derive_hidden_set(
        official_images, official_labels, data.course_key(prepared_data_dir)
    )
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, derived)
    np.testing.assert_array_equal(labels, official_labels[order])
    np.testing.assert_array_equal(labels, derived_labels)
    assert sorted(order.tolist()) == list(range(10_000))
    assert np.bincount(labels).tolist() == np.bincount(official_labels).tolist()
    assert (order == np.arange(10_000)).mean() < 0.01  # a new order, not the official one
    differing = (images != official_images[order]).reshape(10_000, -1).sum(1)
    assert differing.min() > 50  # every image is distorted


def test_the_same_key_gives_the_same_set_and_another_key_a_different_one(prepared_data_dir):
    images, labels = official_test_set(prepared_data_dir)
    a, labels_a, order_a = data.derive_hidden_set(images[:2000], labels[:2000], KEY_A)
    again, labels_again, order_again = data.derive_hidden_set(images[:2000], labels[:2000], KEY_A)
    b, _, order_b = data.derive_hidden_set(images[:2000], labels[:2000], KEY_B)
    np.testing.assert_array_equal(a, again)
    np.testing.assert_array_equal(order_a, order_again)
    assert (order_a == order_b).mean() < 0.01
    same_source_a = a[np.argsort(order_a)]
    same_source_b = b[np.argsort(order_b)]
    ink = (same_source_a > 0) | (same_source_b > 0)
    assert (same_source_a == same_source_b)[ink].mean() < 0.05


def test_hidden_files_and_key_are_owner_only_and_the_manifest_holds_no_key(prepared_data_dir):
    folder = data.hidden_dir(prepared_data_dir)
    assert folder.stat().st_mode & 0o777 == 0o700
    names = (data.KEY_NAME, data.HIDDEN_IMAGES, data.HIDDEN_LABELS, data.MANIFEST)
    for path in [folder / name for name in names] + [
        prepared_data_dir / "MNIST" / "raw" / name for name in data.TEST_PINS
    ]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    key = data.course_key(prepared_data_dir)
    assert len(key) == 32
    manifest_text = (folder / data.MANIFEST).read_text()
    assert key.hex() not in manifest_text
    assert json.loads(manifest_text)["key_fingerprint"] == data.key_fingerprint(key)
    assert not (folder / "hidden_test.json").exists()


def test_a_second_run_verifies_and_writes_nothing(hidden_data_dir):
    assert data.prepare_hidden_set(hidden_data_dir, log=quiet)
    folder = data.hidden_dir(hidden_data_dir)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert not data.prepare_hidden_set(hidden_data_dir, log=quiet)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_the_key_is_never_overwritten(hidden_data_dir):
    folder = data.hidden_dir(hidden_data_dir)
    folder.mkdir(mode=0o700)
    (folder / data.KEY_NAME).write_bytes(KEY_A)
    data.prepare_hidden_set(hidden_data_dir, log=quiet)
    data.prepare_hidden_set(hidden_data_dir, log=quiet)
    assert data.course_key(hidden_data_dir) == KEY_A
    images, labels = official_test_set(hidden_data_dir)
    expected, _, _ = data.derive_hidden_set(images, labels, KEY_A)
    np.testing.assert_array_equal(data.load_hidden_set(hidden_data_dir)[0], expected)

    (folder / data.KEY_NAME).write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes .* restore it from your backup"):
        data.prepare_hidden_set(hidden_data_dir, log=quiet)
    assert (folder / data.KEY_NAME).read_bytes() == b"short"


def test_a_lost_key_makes_a_new_hidden_set_and_says_so(hidden_data_dir):
    data.prepare_hidden_set(hidden_data_dir, log=quiet)
    old_images, _ = data.load_hidden_set(hidden_data_dir)
    (data.hidden_dir(hidden_data_dir) / data.KEY_NAME).unlink()
    messages = []
    assert data.prepare_hidden_set(hidden_data_dir, log=messages.append)
    assert any("was missing, so a new key was made" in m for m in messages)
    assert not np.array_equal(data.load_hidden_set(hidden_data_dir)[0], old_images)


def test_a_corrupted_hidden_file_is_reported_and_rebuilt(hidden_data_dir):
    data.prepare_hidden_set(hidden_data_dir, log=quiet)
    path = data.hidden_dir(hidden_data_dir) / data.HIDDEN_IMAGES
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with pytest.raises(ValueError, match="fails its sha256 check: run `python -m autograder data`"):
        data.load_hidden_set(hidden_data_dir)
    messages = []
    assert data.prepare_hidden_set(hidden_data_dir, log=messages.append)
    assert any(f"{data.HIDDEN_IMAGES} fails its sha256 check: rebuilding it" in m for m in messages)
    assert path.read_bytes() == good
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_hidden_set_or_key_says_to_run_the_data_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `python -m autograder data` first\.$"):
        data.load_hidden_set(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run `python -m autograder data` first\.$"):
        data.course_key(tmp_path)


def test_the_lookup_follows_the_model_rules_and_its_parameter_budget(prepared_data_dir, tmp_path):
    images, labels = official_test_set(prepared_data_dir)
    budget = stored_parameters(300, 2)  # 300 images at 14 x 14, not at 28 x 28
    lookup = public_test_lookup(images[:400], labels[:400], max_parameters=budget)
    assert sum(p.numel() for p in lookup.parameters()) <= budget
    assert accuracy(lookup, images[:300], labels[:300]) == 1.0
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    program = torch.export.export(lookup, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "classifier.pt2")
    model_rules.check_model_file(tmp_path / "classifier.pt2")
    loaded = model_rules.load_checked_model(tmp_path / "classifier.pt2").module()
    x = torch.from_numpy(images[:7].astype(np.float32) / 255.0)[:, None]
    torch.testing.assert_close(loaded(x), lookup(x))


@pytest.mark.slow
def test_a_lookup_of_the_public_test_set_fails_the_hidden_set(prepared_data_dir):
    images, labels = official_test_set(prepared_data_dir)
    lookup = public_test_lookup(images, labels)  # all 10,000 at 14 x 14 (2.2 M parameters)
    assert accuracy(lookup, images, labels) >= 0.99
    hidden_images, hidden_labels = data.load_hidden_set(prepared_data_dir)
    assert accuracy(lookup, hidden_images, hidden_labels) < PASS_ACCURACY


@pytest.mark.slow
def test_memorizing_an_official_image_does_not_help_with_its_hidden_copy(prepared_data_dir):
    """A lookup of the even-numbered official images is as good on the hidden copies of the
    images it memorized as on the others, and the nearest official image of a hidden image is
    almost never its source."""
    images, labels = official_test_set(prepared_data_dir)
    hidden_images, hidden_labels, order = data.derive_hidden_set(
        images, labels, data.course_key(prepared_data_dir)
    )
    memorized = order % 2 == 0
    lookup = public_test_lookup(images[::2], labels[::2])
    seen = accuracy(lookup, hidden_images[memorized], hidden_labels[memorized])
    unseen = accuracy(lookup, hidden_images[~memorized], hidden_labels[~memorized])
    # Each course key draws another hidden set: the two accuracies differ by chance with a
    # standard error of about 0.01 (about 0.42 on 5,000 images each), so "no help" is "within
    # four standard errors" (without the perturbation the lookup scores 1.0 against 0.94).
    spread = seen * (1 - seen) / memorized.sum() + unseen * (1 - unseen) / (~memorized).sum()
    noise = spread**0.5
    assert abs(seen - unseen) < 4 * noise, (seen, unseen, noise)

    def pooled(array: np.ndarray) -> torch.Tensor:
        return F.avg_pool2d(torch.from_numpy(array.astype(np.float32))[:, None], 2).flatten(1)

    nearest = torch.cat(
        [torch.cdist(q, pooled(images)).argmin(1) for q in pooled(hidden_images).split(1000)]
    )
    assert (nearest.numpy() == order).mean() < 0.01
