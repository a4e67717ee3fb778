"""Reading what a sandbox wrote, as data only, without following anything it planted.

A sandboxed job owns its work folder: any name in it may be a symbolic link, a FIFO, a huge
file or a folder where a file should be. Every read here opens each path component relative to
the folder above it with ``O_NOFOLLOW`` (no link is followed, not even in a parent folder),
accepts regular files only, and stops at a size limit. Arrays are read with
``allow_pickle=False``; JSON with the standard parser. A file that breaks any rule reads as
``None``.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path, PurePosixPath

import numpy as np

NUMERIC_KINDS = "biuf"
"""dtype kinds an array from a sandbox may have: bool, int, unsigned, float."""


def read_bytes(root: Path, relative: str | PurePosixPath, max_bytes: int) -> bytes | None:
    """The bytes of ``root/relative`` if it is a regular file of at most ``max_bytes`` reached
    without any symbolic link below ``root``, else None."""
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    folder_flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY
    try:
        fd = os.open(root, folder_flags)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, folder_flags, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(file_fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
        return data if len(data) <= max_bytes else None
    finally:
        os.close(file_fd)


def read_json(root: Path, relative: str, max_bytes: int) -> dict | None:
    """A JSON object from ``root/relative`` (see :func:`read_bytes`), else None."""
    data = read_bytes(root, relative, max_bytes)
    try:
        value = json.loads(data.decode("utf-8")) if data is not None else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_array(root: Path, relative: str, max_bytes: int) -> np.ndarray | None:
    """A numeric ``.npy`` array from ``root/relative`` (no pickles, no object arrays), else None."""
    data = read_bytes(root, relative, max_bytes)
    if data is None:
        return None
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return array if isinstance(array, np.ndarray) and array.dtype.kind in NUMERIC_KINDS else None


def read_arrays(root: Path, relative: str, max_bytes: int) -> dict[str, np.ndarray] | None:
    """The numeric arrays of a ``.npz`` file (see :func:`read_array`), else None."""
    data = read_bytes(root, relative, max_bytes)
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
    if any(a.dtype.kind not in NUMERIC_KINDS for a in arrays.values()):
        return None
    return arrays
