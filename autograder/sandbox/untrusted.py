"""Reading what a sandbox wrote, as data only, without following anything it planted.

A sandboxed job owns its work folder: any name in it may be a symbolic link, a FIFO, a huge
file or a folder where a file should be. Every read here opens each path component relative to
the folder above it with ``O_NOFOLLOW`` (no link is followed, not even in a parent folder),
accepts regular files only, and stops at a size limit.

What a file holds is hostile too, so nothing is allocated from a size the file declares before
that size is checked against a cap:

- ``.npy``: the header is parsed on its own (numpy's header reader, at most
  :data:`MAX_HEADER_BYTES`), only bool/int/float dtypes pass, and the declared shape times the
  item size must be what the file really holds and at most the cap;
- ``.npz``: the zip's member list is read first; too many members, a member that declares more
  than the cap or members that together declare more are refused, and every member is
  decompressed with a bounded read (at most the cap plus one byte, whatever it declares);
- JSON: the nesting depth and the number of items are counted on the raw text before the
  parser (which recurses) ever sees it.

The ``load_*`` functions raise :class:`UnusableData` whose message says why (a phrase for a
sentence); the ``read_*`` functions return None instead. Neither raises anything else.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

NUMERIC_KINDS = "biuf"
"""dtype kinds an array from a sandbox may have: bool, int, unsigned, float."""
MAX_HEADER_BYTES = 10_000
"""An ``.npy`` header longer than this is refused (numpy's own default for untrusted files)."""
MAX_NPZ_MEMBERS = 4096
_CENTRAL_DIRECTORY_ENTRY = b"PK\x01\x02"
"""Each member of a zip has one such record; counted before zipfile builds its member list."""
MAX_JSON_DEPTH = 64
"""Deeper JSON is refused before parsing (probe data nests 3 deep, a notebook about 8)."""
MAX_JSON_ITEMS = 2_000_000
"""More values (items of lists and objects) than this are refused before parsing."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
"""A JSON string (possessive: linear time even for an unterminated one)."""
_BRACKET_STEPS = np.zeros(256, dtype=np.int8)
_BRACKET_STEPS[[ord("["), ord("{")]] = 1
_BRACKET_STEPS[[ord("]"), ord("}")]] = -1
_STRUCTURE = bytes(range(256)).translate(None, b"[]{},")
"""Every byte but the ones that make JSON's structure (deleted before counting)."""
_CHUNK = 2**20


class UnusableData(ValueError):
    """A file from a sandbox breaks a rule; the message says which, as a phrase."""


def _open_file(root: Path, relative: str | PurePosixPath) -> int | None:
    """A read-only descriptor of ``root/relative`` reached without any symbolic link below
    ``root`` (each component opened with ``O_NOFOLLOW`` in the folder above), else None."""
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
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def file_size(root: Path, relative: str | PurePosixPath) -> int | None:
    """The size of ``root/relative`` if it is a regular file reached without any symbolic link
    below ``root``, else None (for a sentence such as "too large for feedback (62 MB)")."""
    file_fd = _open_file(root, relative)
    if file_fd is None:
        return None
    try:
        info = os.fstat(file_fd)
        return info.st_size if stat.S_ISREG(info.st_mode) else None
    finally:
        os.close(file_fd)


def read_bytes(root: Path, relative: str | PurePosixPath, max_bytes: int) -> bytes | None:
    """The bytes of ``root/relative`` if it is a regular file of at most ``max_bytes`` reached
    without any symbolic link below ``root``, else None."""
    file_fd = _open_file(root, relative)
    if file_fd is None:
        return None
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(file_fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
        return data if len(data) <= max_bytes else None
    finally:
        os.close(file_fd)


def _file(root: Path, relative: str, max_bytes: int) -> bytes:
    data = read_bytes(root, relative, max_bytes)
    if data is None:
        raise UnusableData(
            f"{relative} is missing, not a regular file or larger than {max_bytes:,} bytes"
        )
    return data


def _guarded(parse, what: str):
    """Run ``parse()``; any failure but :class:`UnusableData` becomes one naming ``what``."""
    try:
        return parse()
    except UnusableData:
        raise
    except MemoryError as error:
        raise UnusableData(f"{what} needs more memory than the grader allows") from error
    except Exception as error:
        raise UnusableData(f"{what} cannot be read ({type(error).__name__})") from error


# ----------------------------------------------------------------------------- JSON


def check_json_text(data: bytes, max_depth: int, max_items: int) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` or holding more than ``max_items``
    values, counted on the raw text (strings taken out first) before any parser runs."""
    structure = _JSON_STRING.sub(b'""', data).translate(None, _STRUCTURE)
    items = structure.count(b",")
    if items > max_items:
        raise UnusableData(f"its JSON holds {items:,} values (at most {max_items:,})")
    deepest = _deepest(structure.replace(b",", b""))
    if deepest > max_depth:
        raise UnusableData(f"its JSON is nested more than {max_depth} levels deep")


def _deepest(brackets: bytes) -> int:
    """The deepest nesting of a run of JSON brackets, a chunk at a time (bounded memory)."""
    deepest = level = 0
    for start in range(0, len(brackets), _CHUNK):
        steps = _BRACKET_STEPS[np.frombuffer(brackets[start : start + _CHUNK], dtype=np.uint8)]
        levels = np.cumsum(steps, dtype=np.int64) + level
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def parse_json(
    data: bytes, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS
) -> object:
    """The value of JSON text ``data`` (UTF-8) after :func:`check_json_text`."""

    def parse():
        check_json_text(data, max_depth, max_items)
        return json.loads(data.decode("utf-8"))

    return _guarded(parse, "the JSON")


def load_json(
    root: Path,
    relative: str,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    max_items: int = MAX_JSON_ITEMS,
) -> dict:
    """A JSON object from ``root/relative`` (see :func:`read_bytes`); raises UnusableData."""
    value = parse_json(_file(root, relative, max_bytes), max_depth, max_items)
    if not isinstance(value, dict):
        raise UnusableData(f"{relative} holds a JSON {type(value).__name__}, not an object")
    return value


def read_json(root: Path, relative: str, max_bytes: int, **limits: int) -> dict | None:
    """A JSON object from ``root/relative`` (see :func:`load_json`), else None."""
    try:
        return load_json(root, relative, max_bytes, **limits)
    except UnusableData:
        return None


# ----------------------------------------------------------------------------- arrays


def npy_header(stream: io.BufferedIOBase) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` data at ``stream``'s position, read
    from its header alone; the stream is left where the array's bytes begin."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_BYTES)
    elif version in ((2, 0), (3, 0)):
        header = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_BYTES)
    else:
        raise UnusableData(f"its .npy format version {version} is unknown")
    return header


def parse_npy(data: bytes, what: str = "the array") -> np.ndarray:
    """The array of ``.npy`` bytes ``data``: numeric dtype only, and exactly as many bytes as
    its header declares (checked before anything is allocated)."""

    def parse():
        stream = io.BytesIO(data)
        shape, fortran_order, dtype = npy_header(stream)
        if dtype.kind not in NUMERIC_KINDS or dtype.hasobject or dtype.fields or dtype.subdtype:
            raise UnusableData(f"{what} has the dtype {dtype}, not bool, int or float numbers")
        if any(not isinstance(n, int) or n < 0 for n in shape):
            raise UnusableData(f"{what} declares the shape {shape}")
        declared = math.prod(shape) * dtype.itemsize
        if declared != len(data) - stream.tell():
            raise UnusableData(
                f"{what} declares {declared:,} bytes of numbers but holds "
                f"{len(data) - stream.tell():,}"
            )
        flat = np.frombuffer(data, dtype=dtype, offset=stream.tell(), count=math.prod(shape))
        order = "F" if fortran_order else "C"
        return flat.reshape(shape, order=order).copy(order="C")

    return _guarded(parse, what)


def load_array(root: Path, relative: str, max_bytes: int) -> np.ndarray:
    """A numeric ``.npy`` array of at most ``max_bytes`` (file and numbers); raises
    UnusableData."""
    return parse_npy(_file(root, relative, max_bytes), relative)


def read_array(root: Path, relative: str, max_bytes: int) -> np.ndarray | None:
    """A numeric ``.npy`` array from ``root/relative`` (see :func:`load_array`), else None."""
    try:
        return load_array(root, relative, max_bytes)
    except UnusableData:
        return None


def parse_npz(
    data: bytes, max_unpacked: int, max_members: int = MAX_NPZ_MEMBERS
) -> dict[str, np.ndarray]:
    """The numeric arrays of ``.npz`` bytes ``data``, unpacking at most ``max_unpacked`` bytes
    in all: the declared sizes are checked first and every member is read with a bound."""

    def parse():
        if data.count(_CENTRAL_DIRECTORY_ENTRY) > max_members:
            raise UnusableData(f"it holds more than {max_members:,} arrays")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > max_members:
                raise UnusableData(f"it holds {len(members):,} arrays (at most {max_members:,})")
            declared = sum(m.file_size for m in members)
            if declared > max_unpacked:
                raise UnusableData(
                    f"its arrays unpack to {declared:,} bytes (at most {max_unpacked:,})"
                )
            arrays, left = {}, max_unpacked
            for member in members:
                name = member.filename.removesuffix(".npy")
                bound = min(member.file_size, left)
                with archive.open(member) as stream:
                    raw = stream.read(bound + 1)
                if len(raw) > bound:
                    raise UnusableData(f"{name!r} unpacks to more than it declares")
                left -= len(raw)
                arrays[name] = parse_npy(raw, f"the array {name!r}")
            return arrays

    return _guarded(parse, "the arrays file")


def load_arrays(
    root: Path, relative: str, max_bytes: int, max_unpacked: int | None = None
) -> dict[str, np.ndarray]:
    """The numeric arrays of a ``.npz`` file of at most ``max_bytes`` that unpacks to at most
    ``max_unpacked`` bytes (default ``max_bytes``); raises UnusableData."""
    data = _file(root, relative, max_bytes)
    return parse_npz(data, max_bytes if max_unpacked is None else max_unpacked)


def read_arrays(
    root: Path, relative: str, max_bytes: int, max_unpacked: int | None = None
) -> dict[str, np.ndarray] | None:
    """The numeric arrays of a ``.npz`` file (see :func:`load_arrays`), else None."""
    try:
        return load_arrays(root, relative, max_bytes, max_unpacked)
    except UnusableData:
        return None
