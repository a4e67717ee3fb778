"""Bad (and good) submission archives for the collect tests, built by code, never committed.

Each builder writes one zip into ``folder`` and returns its path. The good ones hold the files of
a plausible exercise_08 hand-in; the bad ones are what a class of 300 really uploads, plus the
hostile cases (path traversal, links, bombs).
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

GOOD_FILES = {
    "autoencoder.ipynb": json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    ),
    "exercise_code/__init__.py": "",
    "exercise_code/networks.py": "def encoder():\n    return 'student code'\n",
    "models/classifier.pt2": "not really a model, but collect does not look inside",
}


def _write(path: Path, entries: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


def good(folder: Path, name: str = "alice.zip", prefix: str = "") -> Path:
    """A good hand-in; ``prefix`` puts the files into top folder(s), e.g. ``"exercise_08/"``."""
    return _write(folder / name, {prefix + k: v for k, v in GOOD_FILES.items()})


def not_a_zip(folder: Path, name: str = "s_notzip.zip") -> Path:
    path = folder / name
    path.write_text("This is my homework, I pasted it into a text file.\n")
    return path


def empty(folder: Path, name: str = "s_empty.zip") -> Path:
    return _write(folder / name, {})


def only_junk(folder: Path, name: str = "s_junk.zip") -> Path:
    return _write(folder / name, {"__MACOSX/._x": "junk", ".DS_Store": "junk"})


def truncated(folder: Path, name: str = "s_truncated.zip") -> Path:
    data = good(folder, name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    return folder / name


def traversal(folder: Path, name: str = "s_traversal.zip") -> Path:
    entries = dict(GOOD_FILES)
    entries["exercise_code/../../../escaped_by_traversal.py"] = "print('escaped')"
    return _write(folder / name, entries)


def absolute(folder: Path, target: Path, name: str = "s_absolute.zip") -> Path:
    """An entry whose name is the absolute path ``target``."""
    entries = dict(GOOD_FILES)
    entries[str(target)] = "print('escaped')"
    return _write(folder / name, entries)


def symlink(folder: Path, name: str = "s_symlink.zip") -> Path:
    path = good(folder, name)
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("exercise_code/secrets.py")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return path


def bomb(folder: Path, name: str = "s_bomb.zip", megabytes: int = 300) -> Path:
    """One file of zeros that deflates about 1000:1 (streamed, so it stays cheap to build)."""
    path = good(folder, name)
    block = bytes(2**20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("models/weights.pt", "w", force_zip64=True) as sink:
            for _ in range(megabytes):
                sink.write(block)
    return path


def many_files(folder: Path, name: str = "s_manyfiles.zip", count: int = 30_000) -> Path:
    path = good(folder, name)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        for number in range(count):
            archive.writestr(f"cache/{number:05d}.txt", "")
    return path


def non_utf8_name(
    folder: Path, name: str = "s_latin1.zip", stored_name: bytes = b"L\xf6sung"
) -> Path:
    """A good hand-in plus ``<stored_name>.txt`` stored without the UTF-8 flag: by default in
    Latin-1, as old zip tools write umlauts."""
    placeholder = b"L" + b"x" * (len(stored_name) - 1)
    buffer = io.BytesIO()
    entries = dict(GOOD_FILES)
    entries[placeholder.decode() + ".txt"] = "meine Notizen"
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)
    (folder / name).write_bytes(buffer.getvalue().replace(placeholder, stored_name))
    return folder / name


def nested_top_folder(folder: Path, name: str = "dora_final.zip") -> Path:
    return good(folder, name, prefix="handin/exercise_08/")


def macosx_junk(folder: Path, name: str = "erin.zip") -> Path:
    path = good(folder, name, prefix="exercise_08/")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("__MACOSX/exercise_08/._autoencoder.ipynb", b"\x00\x05\x16\x07")
        archive.writestr("exercise_08/.DS_Store", b"\x00\x00\x00\x01Bud1")
        archive.writestr("exercise_08/.ipynb_checkpoints/autoencoder-checkpoint.ipynb", "{}")
        archive.writestr("exercise_08/exercise_code/__pycache__/networks.cpython-311.pyc", b"x")
    return path


def duplicate_entry(folder: Path, name: str = "s_duplicate.zip") -> Path:
    path = good(folder, name)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("exercise_code/networks.py", "def encoder():\n    return 'second copy'\n")
    return path


def encrypted_flag(folder: Path, name: str = "s_encrypted.zip") -> Path:
    """A zip whose entries say they are encrypted (the flag set in both headers)."""
    data = good(folder, name).read_bytes()
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            flags = start + offset
            data = data[:flags] + b"\x01\x00" + data[flags + 2 :]
            start = data.find(signature, start + 4)
    (folder / name).write_bytes(data)
    return folder / name


def two_zips(folder: Path, student: str = "carol") -> tuple[Path, Path]:
    """An older good zip and a newer good zip (different content) of one student."""
    older = good(folder, f"{student}_first_try.zip")
    newer = _write(
        folder / f"{student}_second_try.zip",
        {**GOOD_FILES, "exercise_code/networks.py": "def encoder():\n    return 'newer'\n"},
    )
    os.utime(older, (1_700_000_000, 1_700_000_000))
    os.utime(newer, (1_700_000_100, 1_700_000_100))
    return older, newer


# --- Uploads as they come: the other assignment, and LMS bulk downloads ----------------------

OPTIONAL_FILES = {
    "regularization.ipynb": json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    ),
    "exercise_code/__init__.py": "",
    "exercise_code/layers.py": "def dropout_forward(x, p):\n    return x\n",
}
"""A plausible exercise_08_optional hand-in (its notebook is regularization.ipynb)."""


def zip_bytes(entries: dict[str, str | bytes]) -> bytes:
    """A zip holding ``entries`` (name -> content), as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def hand_in(marker: str) -> bytes:
    """A good exercise_08 zip whose networks.py says ``marker`` (to see where it landed)."""
    return zip_bytes({**GOOD_FILES, "exercise_code/networks.py": f"# {marker}\n"})


def optional(folder: Path, name: str = "s1_exercise_08_optional.zip") -> Path:
    """A good exercise_08_optional hand-in."""
    return _write(folder / name, OPTIONAL_FILES)


def both_assignments(folder: Path, student: str = "s1") -> tuple[Path, Path]:
    """``<student>_exercise_08.zip`` and a NEWER ``<student>_exercise_08_optional.zip``."""
    main = _write(folder / f"{student}_exercise_08.zip", GOOD_FILES)
    extra = optional(folder, f"{student}_exercise_08_optional.zip")
    os.utime(main, (1_700_000_000, 1_700_000_000))
    os.utime(extra, (1_700_000_500, 1_700_000_500))
    return main, extra


def write_download(path: Path, members: dict[str, bytes], when: tuple = (2024, 5, 14)) -> Path:
    """An LMS bulk download: a zip of ``members`` (path inside -> bytes), one minute apart."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for minute, (name, content) in enumerate(members.items()):
            archive.writestr(zipfile.ZipInfo(name, (*when, 10, minute, 0)), content)
    return path


def moodle_download(folder: Path, students: list[tuple], layout: str = "flat") -> Path:
    """Moodle's "Download all submissions" of the assignment "Exercise 08" (cmid 42).

    ``students``: ``(full name, participant id, {original file name: bytes})``. Layouts, as
    ``mod/assign/classes/downloader.php`` writes them:

    - ``"flat"``: ``Jane Doe_1001_assignsubmission_file_exercise_08.zip`` and, for online text,
      ``Jane Doe_1001_assignsubmission_onlinetext_onlinetext.html``;
    - ``"folders"`` (Moodle 4.1+): ``Jane Doe_1001_assignsubmission_file/exercise_08.zip``;
    - ``"folders_3x"`` (Moodle 3.1-4.0): ``Jane Doe_1001_assignsubmission_file_/exercise_08.zip``.
    """
    members = {}
    for full_name, participant, files in students:
        prefix = f"{full_name.replace('_', ' ')}_{participant}"
        for original, content in files.items():
            plugin = "onlinetext" if original == "onlinetext.html" else "file"
            if layout == "flat":
                members[f"{prefix}_assignsubmission_{plugin}_{original}"] = content
            else:
                tail = "_" if layout == "folders_3x" else ""
                members[f"{prefix}_assignsubmission_{plugin}{tail}/{original}"] = content
    return write_download(folder / "DL101-Exercise 08-42.zip", members)


def canvas_download(folder: Path, members: dict[str, bytes]) -> Path:
    """Canvas's "Download Submissions" zip (flat), as ``lib/content_zipper.rb`` names it.

    Member names are given in Canvas's layout, e.g. ``doejane_1001_5551_exercise_08.zip``,
    ``roebob_LATE_1002_5552_exercise_08.zip`` or ``smithann_1003_text.html``.
    """
    return write_download(folder / "dl101-exercise-08_submissions.zip", members)


def write_roster(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    """A roster CSV (UTF-8 with a byte-order mark, as spreadsheet programs save it)."""
    lines = ([header] if header else []) + rows
    text = "\r\n".join(",".join(f'"{cell}"' for cell in row) for row in lines) + "\r\n"
    path.write_text(text, encoding="utf-8-sig")
    return path
