"""``collect``: import student zips into nbgrader's ``submitted/<student>/<assignment>/`` layout.

What a student hands in is untrusted. Each zip is checked before anything is written:

- it must be a readable, complete zip with at least one file (not encrypted);
- no entry may be absolute, lead outside the folder (``..``), be a symbolic link or another
  special file, or appear twice;
- a name stored without the zip's UTF-8 flag is read as UTF-8 if it is valid UTF-8 (many tools
  write it so) and otherwise in cp437, the zip standard's default: an old zip tool's umlaut
  may look odd in a file name, but it never costs a student the whole hand-in;
- limits on the number of entries, the size of each file, the total unpacked size and the
  compression ratio stop archive bombs (the sizes are also counted while unpacking, so a zip
  that lies about them is stopped as well).

Junk is skipped: ``__MACOSX/``, ``.ipynb_checkpoints/``, ``__pycache__/``, ``.DS_Store``,
``Thumbs.db`` and ``._*`` files. The files may sit at the zip's root or inside one top folder
(or a few nested ones): single top folders are removed until a notebook is at the root.

The student id comes from the file name: ``<id>.zip`` or ``<id>_<anything>.zip``, or the regex
given as ``id_pattern`` (its group ``id``, else its first group, else the whole match, searched in
the file name). Several zips from one student: the newest (by modification time, ties broken by
file name) wins, and collect says which one it used.

A good zip is unpacked into a temporary folder under ``course/.staging/`` and then renamed into
place, so a submission folder is never half-written (leftovers of a killed run are removed by the
next one; collect and grade take the same lock, so they never run on one course at once).
``timestamp.txt`` (nbgrader's submission time) holds the zip's modification time. A rejected
zip gets a result record with status ``rejected`` and one sentence saying what to fix, and no
submission folder. Collecting the same zip again changes nothing; a changed zip replaces the old
submission and forgets its result, so the next ``grade`` grades it again.

Entry point: :func:`collect`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from .course import (
    AutograderError,
    autograded_dir,
    course_lock,
    feedback_dir,
    points_available,
    source_dir,
    submitted_dir,
)
from .results import STUDENT_ID_PATTERN, delete_result, read_result, write_result

JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git"}
JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
CONTENT_DIRS = {"exercise_code", "models"}
"""Top folders that are part of the exercise, never removed as a wrapper folder."""

MAX_TOP_FOLDERS = 3


@dataclass(frozen=True)
class Limits:
    """What one zip may hold; anything beyond is rejected before (and while) unpacking."""

    max_entries: int = 2_000
    max_file_bytes: int = 64 * 2**20
    max_total_bytes: int = 256 * 2**20
    max_ratio: float = 100.0
    ratio_min_bytes: int = 2**20
    """The compression ratio is only checked for files larger than this."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one student's hand-in: ``collected``, ``unchanged`` or ``rejected``."""

    student_id: str
    zip_path: Path
    status: str
    message: str


class Rejected(Exception):
    """A zip that cannot be accepted; the text is one sentence for the student."""


def collect(
    course_dir: Path,
    assignment: str,
    paths: list[Path],
    id_pattern: str | None = None,
    limits: Limits = Limits(),
) -> list[Outcome]:
    """Import the zips in ``paths`` (zip files or folders of them) for ``assignment``.

    Prints one line per student and a summary; returns the outcomes sorted by student id.
    Raises ``AutograderError`` if a path does not exist or ``id_pattern`` is not a valid regex.
    """
    course_dir = Path(course_dir).resolve()
    pattern = _compile(id_pattern)
    zips = _zip_files(paths)
    with course_lock(course_dir, "collect"):
        shutil.rmtree(course_dir / ".staging", ignore_errors=True)
        return _collect_all(course_dir, assignment, zips, pattern, limits)


def _collect_all(
    course_dir: Path, assignment: str, zips: list[Path], pattern: re.Pattern | None, limits: Limits
) -> list[Outcome]:
    by_student: dict[str, list[Path]] = {}
    for zip_path in zips:
        student_id = student_id_from_name(zip_path.name, pattern)
        if student_id is None:
            print(
                f"skipped {zip_path}: its name does not start with a usable student id; rename it "
                "to <id>.zip or <id>_<anything>.zip, or pass --id-pattern."
            )
            continue
        by_student.setdefault(student_id, []).append(zip_path)

    manifest = _load_manifest(course_dir, assignment)
    outcomes = []
    for student_id in sorted(by_student):
        candidates = sorted(by_student[student_id], key=lambda p: (p.stat().st_mtime, p.name))
        chosen = candidates[-1]
        if len(candidates) > 1:
            older = ", ".join(p.name for p in candidates[:-1])
            print(f"{student_id}: {len(candidates)} zips; using the newest, {chosen.name}.")
            print(f"{student_id}: ignored the older {older}.")
        outcome = _collect_one(course_dir, assignment, student_id, chosen, limits, manifest)
        manifest[student_id]["ignored"] = [p.name for p in candidates[:-1]]
        outcomes.append(outcome)
        print(f"{student_id}: {outcome.status} {chosen.name}: {outcome.message}")
    _save_manifest(course_dir, assignment, manifest)
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("collected", "unchanged", "rejected")
    }
    print(
        f"Collected {counts['collected']} new, {counts['unchanged']} unchanged, "
        f"{counts['rejected']} rejected submissions of {assignment} "
        f"(submissions in {course_dir / 'submitted'})."
    )
    return outcomes


def _compile(id_pattern: str | None) -> re.Pattern | None:
    if id_pattern is None:
        return None
    try:
        return re.compile(id_pattern)
    except re.error as error:
        raise AutograderError(
            f"--id-pattern {id_pattern!r} is not a valid regular expression ({error})."
        ) from error


def _zip_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() == ".zip" and not p.name.startswith(".")
            )
        elif path.is_file():
            found.append(path)
        else:
            raise AutograderError(f"{path} does not exist; give a zip file or a folder of zips.")
    unique = {path.resolve(): path for path in found}
    return list(unique.values())


def student_id_from_name(file_name: str, pattern: re.Pattern | None = None) -> str | None:
    """The student id in a zip's file name, or ``None`` if it has no usable one.

    Default rule: ``<id>.zip`` or ``<id>_<anything>.zip``. With ``pattern``: its group ``id``,
    else its first group, else the whole match. The id must be a valid folder name
    (:data:`autograder.results.STUDENT_ID_PATTERN`).
    """
    if pattern is None:
        stem = file_name[:-4] if file_name.lower().endswith(".zip") else file_name
        candidate = stem.split("_", 1)[0]
    else:
        match = pattern.search(file_name)
        if match is None:
            return None
        if "id" in pattern.groupindex:
            candidate = match.group("id")
        elif pattern.groups:
            candidate = match.group(1)
        else:
            candidate = match.group(0)
    if candidate and STUDENT_ID_PATTERN.match(candidate):
        return candidate
    return None


def _collect_one(
    course_dir: Path,
    assignment: str,
    student_id: str,
    zip_path: Path,
    limits: Limits,
    manifest: dict,
) -> Outcome:
    digest = _sha256(zip_path)
    target = submitted_dir(course_dir, assignment, student_id)
    previous = manifest.get(student_id, {})
    if previous.get("sha256") == digest:
        unchanged = (
            target.is_dir()
            if previous.get("status") == "collected"
            else not target.exists() and read_result(course_dir, assignment, student_id)
        )
        if unchanged:
            return Outcome(student_id, zip_path, "unchanged", "already collected, nothing to do.")
    try:
        count = _import_zip(course_dir, zip_path, target, limits)
    except Rejected as error:
        for stale in (
            target,
            autograded_dir(course_dir, assignment, student_id),
            feedback_dir(course_dir, assignment, student_id),
        ):
            shutil.rmtree(stale, ignore_errors=True)
        _write_rejected(course_dir, assignment, student_id, str(error))
        manifest[student_id] = {"zip": str(zip_path), "sha256": digest, "status": "rejected"}
        return Outcome(student_id, zip_path, "rejected", str(error))
    delete_result(course_dir, assignment, student_id)
    manifest[student_id] = {"zip": str(zip_path), "sha256": digest, "status": "collected"}
    return Outcome(student_id, zip_path, "collected", f"{count} files.")


def _write_rejected(course_dir: Path, assignment: str, student_id: str, message: str) -> None:
    tests_max, hidden_max = points_available(assignment, source_dir(course_dir, assignment))
    write_result(
        course_dir,
        assignment,
        student_id,
        {
            "status": "rejected",
            "tests_score": 0.0,
            "tests_max": tests_max,
            "hidden_accuracy": None,
            "hidden_score": 0.0,
            "hidden_max": hidden_max,
            "total": 0.0,
            "total_max": tests_max + hidden_max,
            "message": message,
            "details": [
                {
                    "item": "submission zip",
                    "score": 0.0,
                    "max": tests_max + hidden_max,
                    "reason": message,
                }
            ],
        },
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_zip(zip_path: Path, limits: Limits = Limits()) -> dict[str, zipfile.ZipInfo]:
    """Check a zip against the rules above; return ``{relative path: entry}`` of its real files.

    Junk is left out and wrapper top folders are removed from the relative paths. Raises
    :class:`Rejected` with one sentence for the student if the zip cannot be accepted.
    """
    name = zip_path.name
    with open(zip_path, "rb") as handle:
        looks_like_zip = handle.read(4) == b"PK\x03\x04"
    if looks_like_zip and not zipfile.is_zipfile(zip_path):
        raise Rejected(
            f"{name} is damaged or incomplete (its end is missing, perhaps a broken upload); make "
            "the zip again with create_submission() and upload it again."
        )
    if not zipfile.is_zipfile(zip_path):
        raise Rejected(
            f"{name} is not a zip archive; run create_submission() in the notebook and hand in "
            "the zip it writes."
        )
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise Rejected(
            f"{name} is damaged or incomplete ({error}); make the zip again with "
            "create_submission() and upload it again."
        ) from error
    if len(entries) > limits.max_entries:
        raise Rejected(
            f"{name} has {len(entries):,} entries, more than the limit of {limits.max_entries:,}; "
            "hand in only the notebook, exercise_code/ and models/ (create_submission() does)."
        )
    files: dict[PurePosixPath, zipfile.ZipInfo] = {}
    total = 0
    for info in entries:
        path = _safe_path(info, name)
        if path is None:
            continue
        if path in files:
            raise Rejected(
                f"{name} contains {path} twice; make the zip again with create_submission()."
            )
        _check_entry(info, path, name, limits)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise Rejected(
                f"{name} unpacks to more than {limits.max_total_bytes // 2**20} MB; hand in only "
                "the notebook, exercise_code/ and models/ (create_submission() does)."
            )
        files[path] = info
    if not files:
        raise Rejected(
            f"{name} contains no files; run create_submission() in the notebook and hand in the "
            "zip it writes."
        )
    return {str(path): info for path, info in _strip_top_folders(files).items()}


def _safe_path(info: zipfile.ZipInfo, name: str) -> PurePosixPath | None:
    """The entry's relative path, ``None`` for folders and junk; rejects unsafe names."""
    raw = info.filename  # zipfile decoded it as UTF-8 (flag set) or cp437 (no flag)
    if not info.flag_bits & 0x800:
        with contextlib.suppress(UnicodeDecodeError):
            raw = raw.encode("cp437").decode("utf-8")
    text = raw.replace("\\", "/")
    if "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise Rejected(
            f"{name} contains the absolute path {raw!r}; zip only the exercise folder's files "
            "with create_submission()."
        )
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Rejected(
            f"{name} contains the path {raw!r}, which leads outside the folder; zip only the "
            "exercise folder's files with create_submission()."
        )
    if info.is_dir() or not parts:
        return None
    if any(part in JUNK_DIRS for part in parts) or parts[-1] in JUNK_FILES:
        return None
    if parts[-1].startswith("._"):
        return None
    return PurePosixPath(*parts)


def _check_entry(info: zipfile.ZipInfo, path: PurePosixPath, name: str, limits: Limits) -> None:
    kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
    if kind == stat.S_IFLNK:
        raise Rejected(
            f"{name} contains a symbolic link ({path}); zip real files only (create_submission() "
            "does)."
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise Rejected(f"{name} contains a special file ({path}); zip regular files only.")
    if info.flag_bits & 0x1:
        raise Rejected(f"{name} is password-protected; make the zip again without a password.")
    if info.file_size > limits.max_file_bytes:
        raise Rejected(
            f"{name} holds {path} of {info.file_size / 2**20:.0f} MB, more than the limit of "
            f"{limits.max_file_bytes // 2**20} MB per file; leave large files out."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise Rejected(
            f"{name} holds {path}, compressed more than {limits.max_ratio:.0f}:1, which is how zip "
            "bombs look; hand in the files create_submission() packs."
        )


def _strip_top_folders(files: dict[PurePosixPath, zipfile.ZipInfo]) -> dict:
    """Remove wrapper folders (a single top folder without a notebook beside it)."""
    for _ in range(MAX_TOP_FOLDERS):
        tops = {path.parts[0] for path in files}
        at_root = any(len(path.parts) == 1 for path in files)
        if at_root or len(tops) != 1 or tops <= CONTENT_DIRS:
            break
        files = {PurePosixPath(*path.parts[1:]): info for path, info in files.items()}
    return files


def _import_zip(course_dir: Path, zip_path: Path, target: Path, limits: Limits) -> int:
    """Unpack the checked zip into ``target`` (atomically); return the number of files."""
    files = check_zip(zip_path, limits)
    staging_root = course_dir / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="collect-", dir=staging_root))
    try:
        unpacked = staging / "submission"
        unpacked.mkdir()
        _unpack(zip_path, files, unpacked, limits)
        mtime = datetime.fromtimestamp(zip_path.stat().st_mtime, tz=UTC)
        (unpacked / "timestamp.txt").write_text(mtime.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.rename(staging / "old")
        unpacked.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(files)


def _unpack(zip_path: Path, files: dict, folder: Path, limits: Limits) -> None:
    root = folder.resolve()
    total = 0
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for relative, info in sorted(files.items()):
                destination = (root / relative).resolve()
                if not destination.is_relative_to(root):
                    raise Rejected(f"{zip_path.name} contains the unsafe path {relative!r}.")
                destination.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as source, open(destination, "xb") as sink:
                    for block in iter(lambda: source.read(2**20), b""):
                        written += len(block)
                        total += len(block)
                        if written > min(info.file_size, limits.max_file_bytes) or (
                            total > limits.max_total_bytes
                        ):
                            raise Rejected(
                                f"{zip_path.name} unpacks to more than it declares; make the zip "
                                "again with create_submission()."
                            )
                        sink.write(block)
                os.chmod(destination, 0o644)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise Rejected(
            f"{zip_path.name} cannot be unpacked ({type(error).__name__}: {error}); make the zip "
            "again with create_submission() and upload it again."
        ) from error
    except RuntimeError as error:
        raise Rejected(
            f"{zip_path.name} cannot be read ({error}); make the zip again without a password."
        ) from error


def _manifest_path(course_dir: Path, assignment: str) -> Path:
    return course_dir / "collected" / f"{assignment}.json"


def _load_manifest(course_dir: Path, assignment: str) -> dict:
    path = _manifest_path(course_dir, assignment)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}


def _save_manifest(course_dir: Path, assignment: str, manifest: dict) -> None:
    path = _manifest_path(course_dir, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
