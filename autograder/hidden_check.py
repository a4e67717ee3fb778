"""The hidden-accuracy check: a submitted model's accuracy on the 10,000 hidden test images.

The model runs in a sandboxed process (:mod:`autograder.sandbox`: time and memory limits,
scrubbed environment, no network, private ``/tmp``, its own user id when run as root) that runs
:mod:`autograder.hidden_worker`. It is forked from a warm parent (:mod:`autograder.hidden_zygote`,
which imports torch once per grade run: about 3 s saved per check) and isolates itself before it
opens the model; if that parent cannot start, a fresh sandboxed process is used instead.
That process gets the images only, as a ``.npy`` file of
float32 (N, 1, 28, 28) in [0, 1], and the source exercise's ``model_rules.py``; it writes
logits (N, 10). The grader reads the hidden labels only after the process has exited and
computes the accuracy itself:

    accuracy = (1/N) * sum_i [argmax_k logits[i, k] == label[i]]

and gives all the points if ``accuracy >= pass_accuracy``, none otherwise.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .exercise_modules import exercise_code_module
from .sandbox import (
    Outcome,
    Sandbox,
    kill_user_processes,
    read_untrusted_json,
    run_sandboxed,
    sandbox_spec,
    scrubbed_env,
)

WORKER = Path(__file__).with_name("hidden_worker.py")
ZYGOTE = Path(__file__).with_name("hidden_zygote.py")
MODEL_RELATIVE_PATH = "models/classifier.pt2"
HIDDEN_IMAGES = "t10k-images-idx3-ubyte"
HIDDEN_LABELS = "t10k-labels-idx1-ubyte"


@dataclass
class HiddenResult:
    """Outcome of the check: ``accuracy`` is ``None`` when the model could not be measured."""

    accuracy: float | None
    score: float
    max_score: float
    message: str
    seconds: float = 0.0


def _hidden_indices(data_dir: Path) -> np.ndarray | None:
    split = Path(data_dir) / "hidden" / "hidden_test.json"
    if not split.is_file():
        return None
    return np.asarray(json.loads(split.read_text(encoding="utf-8")), dtype=np.int64)


def _read_idx(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"The hidden test file {path} is missing: run `python -m autograder data` first."
        )
    return exercise_code_module("exercise_08", "mnist_files").read_idx(path)


def load_hidden_images(data_dir: Path) -> np.ndarray:
    """The hidden test images as float32 (N, 1, 28, 28) in [0, 1] (instructor side only)."""
    images = _read_idx(Path(data_dir) / "MNIST" / "raw" / HIDDEN_IMAGES)
    indices = _hidden_indices(data_dir)
    if indices is not None:
        images = images[indices]
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def load_hidden_labels(data_dir: Path) -> np.ndarray:
    """The hidden test labels as int64 (N,); read only after the model's process has exited."""
    labels = _read_idx(Path(data_dir) / "MNIST" / "raw" / HIDDEN_LABELS)
    indices = _hidden_indices(data_dir)
    if indices is not None:
        labels = labels[indices]
    return labels.astype(np.int64)


class _Zygote:
    """Client of :mod:`autograder.hidden_zygote`, started on first use, shared by all threads."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.ready = False
        self.broken = False
        self.lock = threading.Lock()
        self.home: str | None = None

    def launch(self) -> None:
        """Start the zygote process; it imports torch in the background."""
        self.home = tempfile.mkdtemp(prefix=f"autograder-grade-{os.getpid()}-zygote-")
        Path(self.home, "tmp").mkdir()
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=scrubbed_env(Path(self.home)),
            cwd=self.home,
            text=True,
            start_new_session=True,
        )
        atexit.register(self.close)

    def spawn(self, request: dict) -> int | None:
        """Fork a worker for ``request``; its pid, or None if the zygote is not usable."""
        with self.lock:
            if self.broken:
                return None
            try:
                if self.process is None:
                    self.launch()
                if not self.ready:
                    self.ready = self.process.stdout.readline().strip() == "ready"
                    if not self.ready:
                        raise ValueError("the zygote did not start")
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                return int(json.loads(self.process.stdout.readline())["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                self.broken = True
                self.close()
                return None

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        self.ready = False
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


_ZYGOTE = _Zygote()


def warm_up() -> None:
    """Start the warm worker parent now, so that it is ready by the first check of a run."""
    with _ZYGOTE.lock:
        if _ZYGOTE.process is None and not _ZYGOTE.broken:
            _ZYGOTE.launch()


def shutdown() -> None:
    """Stop the warm worker parent (``grade`` calls this when it is done)."""
    with _ZYGOTE.lock:
        _ZYGOTE.close()
        _ZYGOTE.broken = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_worker(args: list[str], sandbox: Sandbox, work_dir: Path, log: Path) -> Outcome:
    """Run the worker on ``args`` under ``sandbox``: forked from the warm zygote when possible,
    else as a fresh sandboxed process."""
    start = time.monotonic()
    spec = sandbox_spec(sandbox, work_dir)
    pid = _ZYGOTE.spawn({"spec": spec, "args": args, "log": str(log)})
    if pid is None:
        argv = [sys.executable, "-I", str(WORKER), *args]
        return run_sandboxed(argv, sandbox, work_dir, scrubbed_env(work_dir), log)
    timed_out = False
    while _alive(pid):
        if time.monotonic() - start > sandbox.timeout_s:
            timed_out = True
            break
        time.sleep(0.01)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if sandbox.uid is not None:
        kill_user_processes(sandbox.uid)
    return Outcome(0 if not timed_out else -9, timed_out, time.monotonic() - start)


def _prepare_work_dir(work_dir: Path, uid: int | None) -> None:
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for path in (work_dir, work_dir / "tmp"):
            os.chown(path, uid, uid)
        work_dir.chmod(0o700)


def _read_logits(path: Path, count: int) -> np.ndarray | None:
    """The worker's logits if they are a finite float array of shape (count, 10), else None."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > count * 10 * 8 + 4096:
        return None
    try:
        logits = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if logits.shape != (count, 10) or logits.dtype.kind != "f" or not np.isfinite(logits).all():
        return None
    return logits


def check_hidden_accuracy(
    model_path: Path,
    rules_path: Path,
    images: np.ndarray,
    data_dir: Path,
    work_dir: Path,
    sandbox: Sandbox,
    points: float,
    pass_accuracy: float,
) -> HiddenResult:
    """Measure the hidden-test accuracy of the model at ``model_path`` and score it.

    Inputs:
    - model_path: the submitted ``models/classifier.pt2`` (a file of the grader's copy).
    - rules_path: ``model_rules.py`` of the SOURCE exercise (never the student's copy).
    - images: float32 (N, 1, 28, 28) in [0, 1], from :func:`load_hidden_images`.
    - data_dir: where the hidden labels are read from, after the worker has exited.
    - work_dir: an empty folder for this check (deleted afterwards by the caller).
    - sandbox: limits and user id of the worker process.
    - points / pass_accuracy: ``points`` if accuracy >= ``pass_accuracy``, else 0.
    """
    if not model_path.is_file() or model_path.is_symlink():
        return HiddenResult(
            None,
            0.0,
            points,
            f"No {MODEL_RELATIVE_PATH} in your submission: run the saving cell of the notebook "
            "and create the zip again.",
        )
    work_dir = Path(work_dir)
    _prepare_work_dir(work_dir, sandbox.uid)
    names = {"rules": "model_rules.py", "model": "classifier.pt2", "images": "images.npy"}
    shutil.copyfile(rules_path, work_dir / names["rules"])
    shutil.copyfile(model_path, work_dir / names["model"])
    np.save(work_dir / names["images"], np.ascontiguousarray(images, dtype=np.float32))
    for name in names.values():
        (work_dir / name).chmod(0o444)
    args = [
        *(str(work_dir / names[key]) for key in ("rules", "model", "images")),
        str(work_dir / "logits.npy"),
        str(work_dir / "result.json"),
    ]
    outcome = _run_worker(args, sandbox, work_dir, work_dir.parent / f"{work_dir.name}.log")
    result = read_untrusted_json(work_dir / "result.json", max_bytes=100_000)
    if outcome.timed_out:
        message = (
            f"Your model took longer than {sandbox.timeout_s:g} s to classify the hidden test "
            "images: use a smaller model and save it again."
        )
        return HiddenResult(None, 0.0, points, message, outcome.seconds)
    if result is not None and result.get("ok") is False:
        message = str(result.get("message") or "Your model breaks a model rule; save it again.")
        return HiddenResult(None, 0.0, points, message[:500], outcome.seconds)
    logits = _read_logits(work_dir / "logits.npy", len(images))
    if outcome.returncode != 0 or result != {"ok": True} or logits is None:
        message = (
            "Running your model on the hidden test images failed (it may need too much memory): "
            "check that save_model runs without an error and create the zip again."
        )
        return HiddenResult(None, 0.0, points, message, outcome.seconds)
    labels = load_hidden_labels(data_dir)
    accuracy = round(float(np.mean(logits.argmax(axis=1) == labels)), 4)
    if accuracy >= pass_accuracy:
        return HiddenResult(accuracy, points, points, "", outcome.seconds)
    message = (
        f"Your model's accuracy on the hidden test set is {accuracy:.2f}, below the "
        f"{pass_accuracy:.2f} needed for these {points:g} points: improve the classifier "
        "(e.g. fine-tune the pretrained encoder) and save it again."
    )
    return HiddenResult(accuracy, 0.0, points, message, outcome.seconds)
