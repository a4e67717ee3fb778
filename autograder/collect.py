"""``collect``: import student zips into nbgrader's ``submitted/<student>/<assignment>/`` layout.

Where the zips come from:

- zip files, or folders of them: every ``*.zip`` in the folder or any subfolder (a "late"
  folder, an unpacked download) is an upload; every other file is skipped with one line saying
  why (``notes.txt``, ``.DS_Store``, macOS ``._*`` copies; a ``__MACOSX`` folder in one line).
  The student id comes from the zip's own file name: ``<id>.zip`` or ``<id>_<anything>.zip``,
  or the regex given as ``id_pattern`` (its group ``id``, else its first group, else the whole
  match, searched in the file name);
- with ``lms="moodle"`` or ``"canvas"``: the LMS's bulk download of the assignment, as its zip
  or as the folder it unpacks to (Moodle with or without "Download submissions in folders").
  The LMS id comes from the LMS's file names and the roster maps it to the student id (layouts
  and roster: :mod:`autograder.lms`). A bulk zip is checked like a student's zip (no absolute
  paths, no ``..``, no links or special files, no entry twice, at most
  ``Limits.max_bulk_entries`` entries and ``Limits.max_bulk_bytes`` in all, sizes counted while
  unpacking) and unpacked under ``course/.staging/`` into numbered files, so no name from the
  download ever names a file here; a bad bulk zip stops collect with one sentence. A student
  whose uploads hold no zip (an online text, a loose notebook) gets a rejected row.

Which assignment a zip is for: a zip whose own file name names only another assignment of the
course (``exercise_08_optional`` when collecting ``exercise_08``; the longer name wins where one
is part of the other, and case, ``_``, ``-`` and spaces do not matter) is skipped; when the name
names none or several, the notebooks inside decide (those of ``course/source/<assignment>/``,
else of the repository's exercise folder): a zip holding only another assignment's notebooks is
skipped. Collect prints one sentence for each skipped file.

A usable student id passes :func:`autograder.results.is_student_id`. An upload without one (a
name with spaces, ``..``, non-ASCII or control characters; an LMS id missing from the roster; a
roster value that is not a usable id) gets a rejected row under the placeholder id
``unnamed-<first 10 hex digits of the sha256 of its name>``, with one sentence naming the file
and saying how to fix it. Once fixed (a new ``--id-pattern``, a roster row, the file renamed),
the next collect forgets that row: the row of an upload that is no longer there (its file is
gone, or it is no longer in the bulk zip collected again) goes; a row of an upload that still
lies elsewhere stays, so collecting in parts keeps the rows of the other parts.

Each zip is checked before anything is written:

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

Several zips from one student for the assignment: the newest (by modification time, ties broken
by file name) wins, and collect says which one it used. A good zip is unpacked into a temporary
folder under ``course/.staging/`` and then renamed into place, so a submission folder is never
half-written (leftovers of a killed run are removed by the next one; collect and grade take the
same lock, so they never run on one course at once). ``timestamp.txt`` (nbgrader's submission
time) holds the zip's modification time. A rejected zip gets a result record with status
``rejected`` and one sentence saying what to fix, and no submission folder. Collecting the same
zip again changes nothing; a changed zip replaces the old submission and forgets its result, so
the next ``grade`` grades it again. Everything collect prints or stores is free of control
characters.

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
import time
import zipfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from . import lms as lms_layouts
from .course import (
    ASSIGNMENTS,
    AutograderError,
    autograded_dir,
    course_lock,
    exercise_dir,
    feedback_dir,
    points_available,
    require_course,
    source_dir,
    submitted_dir,
)
from .files import atomic_write, sha256_of
from .results import clean_text, delete_result, is_student_id, read_result, write_result

JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git"}
JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
CONTENT_DIRS = {"exercise_code", "models"}
"""Top folders that are part of the exercise, never removed as a wrapper folder."""

MAX_TOP_FOLDERS = 3
MAX_SHOWN_CHARS = 80
"""File names in messages are cut to this many characters."""
PLACEHOLDER_PREFIX = "unnamed-"


@dataclass(frozen=True)
class Limits:
    """What one zip may hold; anything beyond is rejected before (and while) unpacking."""

    max_entries: int = 2_000
    max_file_bytes: int = 64 * 2**20
    max_total_bytes: int = 256 * 2**20
    max_ratio: float = 100.0
    ratio_min_bytes: int = 2**20
    """The compression ratio is only checked for files larger than this."""
    max_bulk_entries: int = 20_000
    """Entries of an LMS bulk download."""
    max_bulk_bytes: int = 16 * 2**30
    """What an LMS bulk download may unpack to in all."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one student's hand-in: ``collected``, ``unchanged`` or ``rejected``."""

    student_id: str
    zip_path: Path
    status: str
    message: str


@dataclass(frozen=True)
class Upload:
    """One handed-in file: where it lies, what it is called and whose it is (if known yet)."""

    path: Path
    name: str
    """As the instructor sees it: the file name, or the path inside an LMS download."""
    file_name: str
    """The student's own file name (without an LMS's prefixes)."""
    source: str
    """Where it came from (the manifest records it without control characters)."""
    lms_id: str | None = None
    problem: str | None = None
    """Known before unpacking: why it cannot be accepted (one sentence)."""


class Rejected(Exception):
    """A zip that cannot be accepted; the text is one sentence for the student."""


def collect(
    course_dir: Path,
    assignment: str,
    paths: list[Path],
    id_pattern: str | None = None,
    limits: Limits = Limits(),
    lms: str | None = None,
    roster: Path | None = None,
    student_id: str | None = None,
) -> list[Outcome]:
    """Import the uploads in ``paths`` for ``assignment``; print what happened; return outcomes.

    ``paths`` are zip files or folders of them, or with ``lms`` (``"moodle"`` or ``"canvas"``)
    the LMS's bulk download (its zip or unpacked folder), whose LMS ids ``roster`` maps to
    student ids. With ``student_id`` every upload is that student's (Gradescope's one
    submission): file names are then only shown in messages, never read for an id or an
    assignment (the notebooks inside still decide the assignment). Outcomes are sorted by
    student id. Raises ``AutograderError`` if ``course_dir`` is not a course
    (:func:`autograder.course.require_course`), a path does not exist, the options do not fit
    together, ``id_pattern`` is not a valid regex, the roster is unusable or a bulk download is
    unsafe.
    """
    course_dir = require_course(course_dir)
    exercise_dir(assignment)
    pattern = _compile(id_pattern)
    roster_map = _check_options(lms, roster, id_pattern)
    if student_id is not None and (lms or id_pattern):
        raise AutograderError("A fixed student id takes neither --from nor --id-pattern.")
    with course_lock(course_dir, "collect"):
        staging = course_dir / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            uploads = _uploads(paths, lms, staging, limits)
            return _collect_all(
                course_dir,
                assignment,
                uploads,
                pattern,
                (lms, roster, roster_map),
                limits,
                student_id,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_options(
    lms: str | None, roster: Path | None, id_pattern: str | None
) -> dict[str, lms_layouts.RosterEntry] | None:
    if lms is None:
        if roster is not None:
            raise AutograderError(
                "--roster maps LMS ids and needs --from moodle or --from canvas; give --from too."
            )
        return None
    lms_layouts.check_preset(lms)
    if id_pattern is not None:
        raise AutograderError(
            f"--from {lms} reads ids from the LMS's file names, so --id-pattern does not apply; "
            "leave one of them out."
        )
    if roster is None:
        raise AutograderError(
            f"--from {lms} needs --roster CSV, the file that maps {lms_layouts.PRESETS[lms]} "
            f"{lms_layouts.ID_NAMES[lms]}s to student ids."
        )
    return lms_layouts.read_roster(roster)


def _collect_all(
    course_dir: Path,
    assignment: str,
    uploads: list[Upload],
    pattern: re.Pattern | None,
    lms_options: tuple[str | None, Path | None, dict | None],
    limits: Limits,
    owner: str | None = None,
) -> list[Outcome]:
    lms = lms_options[0]
    notebooks = _notebooks_by_assignment(course_dir)
    manifest = _load_manifest(course_dir, assignment)
    by_student: dict[str, list[Upload]] = {}
    for upload in uploads:
        elsewhere = _belongs_elsewhere(upload, assignment, notebooks, by_name=owner is None)
        if elsewhere:
            print(f"skipped {shown(upload.name)}: {elsewhere}")
            continue
        if owner is not None:
            student_id, problem = owner, None
        else:
            student_id, problem = _identify(upload, pattern, *lms_options)
        if problem is None:
            _forget_placeholder(course_dir, assignment, upload, student_id, manifest)
        by_student.setdefault(student_id, []).append(replace(upload, problem=problem))

    _forget_stale_placeholders(course_dir, assignment, uploads, by_student, manifest)
    outcomes = []
    for student_id in sorted(by_student):
        chosen, older = _choose(student_id, by_student[student_id], lms is not None)
        outcome = _collect_one(course_dir, assignment, student_id, chosen, limits, manifest)
        manifest[student_id]["ignored"] = [_printable(PurePosixPath(u.name).name) for u in older]
        outcomes.append(outcome)
        print(f"{student_id}: {outcome.status} {shown(chosen.name)}: {outcome.message}")
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


def _choose(student_id: str, uploads: list[Upload], from_lms: bool) -> tuple[Upload, list]:
    """The upload to collect (the newest zip) and the older zips it beats; says so."""
    zips = [u for u in uploads if not from_lms or _is_zip_name(u.file_name)]
    for other in uploads:
        if zips and other not in zips:
            print(f"{student_id}: skipped {shown(other.name)}, which is not a zip.")
    candidates = sorted(zips or uploads, key=lambda u: (u.path.stat().st_mtime, u.name))
    chosen, older = candidates[-1], candidates[:-1]
    if not zips and chosen.problem is None:
        chosen = replace(
            chosen,
            problem=f"{shown(chosen.file_name)} is not a zip; hand in the zip that "
            "create_submission() writes.",
        )
    if older:
        print(f"{student_id}: {len(candidates)} zips; using the newest, {shown(chosen.name)}.")
        print(f"{student_id}: ignored the older {', '.join(shown(u.name) for u in older)}.")
    return chosen, older


def shown(name: object) -> str:
    """``name`` as it may appear in a message: printable characters only, cut to a length."""
    text = _printable(name)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _printable(text: object) -> str:
    return "".join(c for c in clean_text(text, keep_spaces=True) if c.isprintable())


def placeholder_id(name: str) -> str:
    """The id of the rejected row of an upload called ``name`` that has no usable student id."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    return PLACEHOLDER_PREFIX + digest[:10]


def _compile(id_pattern: str | None) -> re.Pattern | None:
    if id_pattern is None:
        return None
    try:
        return re.compile(id_pattern)
    except re.error as error:
        raise AutograderError(
            f"--id-pattern {shown(id_pattern)!r} is not a valid regular expression ({error})."
        ) from error


def _uploads(paths: list[Path], lms: str | None, staging: Path, limits: Limits) -> list[Upload]:
    """Every file handed in under ``paths`` (bulk zips unpacked into ``staging``)."""
    found: list[Upload] = []
    for path in map(Path, paths):
        if not path.exists():
            raise AutograderError(
                f"{shown(path)} does not exist; give a zip file or a folder of zips."
            )
        if lms is None:
            found += _plain_uploads(path)
        elif path.is_dir():
            found += _lms_uploads(lms, _folder_files(path), str(path))
        else:
            found += _lms_uploads(lms, _unpack_bulk(path, staging, limits), str(path))
    unique: dict[str, Upload] = {}
    for upload in found:
        unique.setdefault(upload.source, upload)
    return list(unique.values())


def _plain_uploads(path: Path) -> list[Upload]:
    """The zips of a file or a folder (subfolders included); one line for each file skipped."""
    if path.is_file():
        return [Upload(path, path.name, path.name, str(path.resolve()))]
    uploads = []
    for member, child in _walk(path):
        file_name = PurePosixPath(member).name
        if file_name in JUNK_FILES:
            print(f"skipped {shown(member)}: a file the operating system made, not a hand-in.")
        elif file_name.startswith("._"):
            print(f"skipped {shown(member)}: a macOS resource file, not a hand-in.")
        elif not child.is_file():
            print(f"skipped {shown(member)}: not a regular file, not a hand-in.")
        elif not _is_zip_name(file_name):
            print(f"skipped {shown(member)}: not a zip (hand-ins are .zip files).")
        else:
            uploads.append(Upload(child, member, file_name, str(child.resolve())))
    return uploads


def _walk(folder: Path) -> list[tuple[str, Path]]:
    """``(path inside the folder, file)`` of every file under ``folder``, without following
    links to folders; a junk folder (``__MACOSX``, ...) is named once and not entered."""
    files = []
    for root, dirs, names in os.walk(folder):
        for junk in sorted(d for d in dirs if d in JUNK_DIRS):
            member = (Path(root) / junk).relative_to(folder).as_posix()
            print(f"skipped {shown(member)}/: a folder of metadata, not a hand-in.")
        dirs[:] = sorted(d for d in dirs if d not in JUNK_DIRS)
        for name in sorted(names):
            path = Path(root) / name
            files.append((path.relative_to(folder).as_posix(), path))
    return files


def _folder_files(folder: Path) -> list[tuple[str, Path, str | None]]:
    """``(path inside the folder, file, None)`` of an unpacked LMS download (no links, no junk)."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in JUNK_DIRS)
        for name in sorted(names):
            path = Path(root) / name
            member = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file():
                print(f"skipped {shown(member)}: a link or special file, not a hand-in.")
            elif name not in JUNK_FILES and not name.startswith("._"):
                files.append((member, path, None))
    return files


def _lms_uploads(lms: str, files: list[tuple[str, Path, str | None]], origin: str) -> list[Upload]:
    uploads = []
    for member, path, problem in files:
        parsed = lms_layouts.parse_download_name(lms, member)
        uploads.append(
            Upload(
                path=path,
                name=member,
                file_name=parsed.file_name if parsed else PurePosixPath(member).name,
                source=f"{origin}/{member}",
                lms_id=parsed.lms_id if parsed else None,
                problem=problem,
            )
        )
    return uploads


def _unpack_bulk(bulk: Path, staging: Path, limits: Limits) -> list[tuple[str, Path, str | None]]:
    """Unpack an LMS bulk zip into numbered files under ``staging``.

    Returns ``(path inside the zip, file, problem)``; a member compressed beyond the limit is
    not unpacked (an empty stand-in with its problem). Raises ``AutograderError`` for a bulk zip
    that is not a zip, is damaged, too big or unsafe.
    """
    name = shown(bulk.name)
    again = "download it again from the LMS"
    if not zipfile.is_zipfile(bulk):
        raise AutograderError(
            f"{name} is neither a folder nor a zip; give the LMS's bulk download or its folder."
        )
    folder = Path(tempfile.mkdtemp(prefix="bulk-", dir=staging))
    files: list[tuple[str, Path, str | None]] = []
    seen: set[str] = set()
    total = 0
    try:
        with zipfile.ZipFile(bulk) as archive:
            entries = archive.infolist()
            if len(entries) > limits.max_bulk_entries:
                raise AutograderError(
                    f"{name} has {len(entries):,} entries, more than the limit of "
                    f"{limits.max_bulk_entries:,}; unpack it and collect it in parts."
                )
            for number, info in enumerate(entries):
                raw = _entry_name(info)
                if _escapes(raw):
                    raise AutograderError(
                        f"{name} contains the unsafe path {shown(raw)!r}; {again}."
                    )
                path = _relative_path(info, raw)
                if path is None:
                    continue
                member = path.as_posix()
                if (
                    _entry_kind(info) not in (0, stat.S_IFREG)
                    or info.flag_bits & 0x1
                    or (member in seen)
                ):
                    raise AutograderError(
                        f"{name} holds {shown(member)!r} as a link, special, encrypted or "
                        f"repeated entry; {again}."
                    )
                seen.add(member)
                total += info.file_size
                if total > limits.max_bulk_bytes:
                    raise AutograderError(
                        f"{name} unpacks to more than {limits.max_bulk_bytes / 2**30:.0f} GB; "
                        "unpack it and collect it in parts."
                    )
                destination = folder / f"{number:06d}"
                problem = _ratio_problem(info, PurePosixPath(member).name, limits)
                if problem:
                    destination.touch()
                else:
                    _copy_entry(archive, info, destination, limits.max_bulk_bytes)
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(destination, (stamp, stamp))
                files.append((member, destination, problem))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise AutograderError(
            f"{name} cannot be unpacked ({clean_text(error)}); {again}."
        ) from error
    return files


def _ratio_problem(info: zipfile.ZipInfo, file_name: str, limits: Limits) -> str | None:
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        return (
            f"{shown(file_name)} is compressed more than {limits.max_ratio:.0f}:1, which is how "
            "zip bombs look; hand in the zip that create_submission() writes."
        )
    return None


def _copy_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, limit: int
) -> None:
    written = 0
    with archive.open(info) as source, open(destination, "xb") as sink:
        for block in iter(lambda: source.read(2**20), b""):
            written += len(block)
            if written > min(info.file_size, limit):
                raise ValueError("it unpacks to more than it declares")
            sink.write(block)


def _identify(
    upload: Upload,
    pattern: re.Pattern | None,
    lms: str | None,
    roster: Path | None,
    roster_map: dict | None,
) -> tuple[str, str | None]:
    """``(student id, None)``, or ``(placeholder id, why)`` for an upload without a usable id."""
    name = shown(upload.name)
    if lms is None:
        student_id = student_id_from_name(upload.file_name, pattern)
        if student_id is not None:
            return student_id, None
        how = "change --id-pattern or rename it" if pattern else "rename it"
        return placeholder_id(upload.name), (
            f"{name} has no usable student id in its name; {how} to <id>.zip or "
            "<id>_<anything>.zip, where the id has 1-64 ASCII letters, digits, '.', '_' or '-'."
        )
    label, id_name = lms_layouts.PRESETS[lms], lms_layouts.ID_NAMES[lms]
    roster_name = shown(roster)
    if upload.lms_id is None:
        return placeholder_id(upload.name), (
            f"{name} is not named as {label} names the files of a bulk download "
            f"({lms_layouts.LAYOUTS[lms]}); collect it on its own, renamed to <id>.zip."
        )
    entry = roster_map.get(upload.lms_id) if roster_map else None
    if entry is None:
        return placeholder_id(upload.name), (
            f"{name} is from {label} {id_name} {upload.lms_id}, which is not in the roster "
            f"{roster_name}; add {upload.lms_id} with the student's id to the roster and collect "
            "again."
        )
    if not is_student_id(entry.student_id):
        return placeholder_id(upload.name), (
            f"{name} is from {label} {id_name} {upload.lms_id}, which the roster {roster_name} "
            f"maps to {shown(entry.student_id)!r}, not a usable student id; fix that row (1-64 "
            "ASCII letters, digits, '.', '_' or '-') and collect again."
        )
    return entry.student_id, None


def student_id_from_name(file_name: str, pattern: re.Pattern | None = None) -> str | None:
    """The student id in a zip's file name, or ``None`` if it has no usable one.

    Default rule: ``<id>.zip`` or ``<id>_<anything>.zip``. With ``pattern``: its group ``id``,
    else its first group, else the whole match. The id must pass
    :func:`autograder.results.is_student_id`.
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
    return candidate if is_student_id(candidate) else None


def _forget_placeholder(
    course_dir: Path, assignment: str, upload: Upload, student_id: str, manifest: dict
) -> None:
    """Drop the rejected row an earlier collect gave this upload when it had no usable id."""
    placeholder = placeholder_id(upload.name)
    if placeholder in manifest:
        delete_result(course_dir, assignment, placeholder)
        del manifest[placeholder]
        print(f"{placeholder}: forgot its rejected row; {shown(upload.name)} is {student_id}'s.")


def _forget_stale_placeholders(
    course_dir: Path,
    assignment: str,
    uploads: list[Upload],
    by_student: dict[str, list[Upload]],
    manifest: dict,
) -> None:
    """Drop the rejected row of an unnamed upload that is gone (renamed, say): its file no
    longer exists, or it was a file in an LMS bulk zip that this collect read again and no
    longer found there. A rejected row of an upload that still lies elsewhere stays (collecting
    in parts keeps the rows of the other parts)."""
    sources = {u.source for u in uploads}
    for placeholder, entry in list(manifest.items()):
        if not placeholder.startswith(PLACEHOLDER_PREFIX) or placeholder in by_student:
            continue
        source = str(entry.get("zip", ""))
        if source in sources or not _upload_gone(source, sources):
            continue
        delete_result(course_dir, assignment, placeholder)
        del manifest[placeholder]
        print(
            f"{placeholder}: forgot its rejected row; {shown(PurePosixPath(source).name)} is no "
            "longer among the uploads."
        )


def _upload_gone(source: str, sources: set[str]) -> bool:
    """Whether the upload recorded as ``source`` (a file, or ``<bulk zip>/<member>``) is gone."""
    path = Path(source)
    if path.exists():
        return False
    archive = next((p for p in path.parents if p.is_file()), None)
    if archive is None:
        return True
    return any(other.startswith(f"{archive}/") for other in sources)


def _notebooks_by_assignment(course_dir: Path) -> dict[str, set[str]]:
    """The notebook names of every assignment (the course's source copy, else the exercise)."""
    found = {}
    for assignment in ASSIGNMENTS:
        folder = source_dir(course_dir, assignment)
        if not folder.is_dir():
            folder = exercise_dir(assignment)
        found[assignment] = {p.name for p in folder.glob("*.ipynb")} if folder.is_dir() else set()
    return found


def _assignments_named(file_name: str) -> set[str]:
    """The assignments named in ``file_name`` (not counting a name inside a longer one)."""
    text = re.sub(r"[^a-z0-9]", "", file_name.lower())
    spans = {
        assignment: [
            (m.start(), m.end())
            for m in re.finditer(re.escape(re.sub(r"[^a-z0-9]", "", assignment.lower())), text)
        ]
        for assignment in ASSIGNMENTS
    }
    everything = [span for found in spans.values() for span in found]
    return {
        assignment
        for assignment, found in spans.items()
        for start, end in found
        if not any(s <= start and end <= e and e - s > end - start for s, e in everything)
    }


def _belongs_elsewhere(
    upload: Upload, assignment: str, notebooks: dict, by_name: bool = True
) -> str | None:
    """Why ``upload`` is for another assignment (one sentence), or ``None`` if it may be ours;
    ``by_name``: its file name may decide (else only the notebooks inside)."""
    named = _assignments_named(upload.file_name) if by_name else set()
    if len(named) == 1 and assignment not in named:
        return f"its name says it is for {named.pop()}, not {assignment}."
    if len(named) == 1:
        return None
    inside = _notebooks_in(upload.path)
    holders = {a for a, names in notebooks.items() if names & inside}
    if not holders or assignment in holders:
        return None
    other = sorted(holders)[0]
    ours = ", ".join(sorted(notebooks.get(assignment, ()))) or "no notebook"
    return (
        f"it holds {', '.join(sorted(notebooks[other] & inside))}, the notebook of {other}, "
        f"not {ours} of {assignment}."
    )


def _notebooks_in(zip_path: Path) -> set[str]:
    """The notebook file names in a zip (empty if it cannot be read)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return set()
    found = set()
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if parts[-1].endswith(".ipynb") and not parts[-1].startswith("._"):
            if not any(part in JUNK_DIRS for part in parts):
                found.add(parts[-1])
    return found


def _is_zip_name(file_name: str) -> bool:
    return file_name.lower().endswith(".zip")


def _collect_one(
    course_dir: Path,
    assignment: str,
    student_id: str,
    upload: Upload,
    limits: Limits,
    manifest: dict,
) -> Outcome:
    digest = sha256_of(upload.path)
    target = submitted_dir(course_dir, assignment, student_id)
    previous = manifest.get(student_id, {})
    if previous.get("sha256") == digest:
        unchanged = (
            target.is_dir()
            if previous.get("status") == "collected"
            else not target.exists() and read_result(course_dir, assignment, student_id)
        )
        if unchanged:
            manifest[student_id]["zip"] = _printable(upload.source)
            return Outcome(
                student_id, upload.path, "unchanged", "already collected, nothing to do."
            )
    try:
        if upload.problem:
            raise Rejected(upload.problem)
        count = _import_zip(course_dir, upload, target, limits)
    except Rejected as error:
        message = clean_text(error)
        for stale in (
            target,
            autograded_dir(course_dir, assignment, student_id),
            feedback_dir(course_dir, assignment, student_id),
        ):
            shutil.rmtree(stale, ignore_errors=True)
        _write_rejected(course_dir, assignment, student_id, message)
        manifest[student_id] = {
            "zip": _printable(upload.source),
            "sha256": digest,
            "status": "rejected",
        }
        return Outcome(student_id, upload.path, "rejected", message)
    delete_result(course_dir, assignment, student_id)
    manifest[student_id] = {
        "zip": _printable(upload.source),
        "sha256": digest,
        "status": "collected",
    }
    return Outcome(student_id, upload.path, "collected", f"{count} files.")


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


def check_zip(
    zip_path: Path, limits: Limits = Limits(), name: str | None = None
) -> dict[str, zipfile.ZipInfo]:
    """Check a zip against the rules above; return ``{relative path: entry}`` of its real files.

    Junk is left out and wrapper top folders are removed from the relative paths. Raises
    :class:`Rejected` with one sentence for the student if the zip cannot be accepted; the
    sentence calls the zip ``name`` (default: its file name).
    """
    name = shown(zip_path.name if name is None else name)
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


def unpack_zip(
    zip_path: Path, folder: Path, limits: Limits = Limits(), name: str | None = None
) -> int:
    """Check ``zip_path`` (:func:`check_zip`) and unpack its real files into the new folder
    ``folder`` (sizes counted while unpacking); return the number of files. Raises
    :class:`Rejected` with one sentence for the student, as ``collect`` does."""
    files = check_zip(zip_path, limits, name)
    Path(folder).mkdir(parents=True)
    _unpack(
        zip_path, files, Path(folder), limits, shown(Path(zip_path).name if name is None else name)
    )
    return len(files)


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name: zipfile decoded it as UTF-8 (flag set) or cp437 (no flag)."""
    raw = info.filename
    if not info.flag_bits & 0x800:
        with contextlib.suppress(UnicodeDecodeError):
            raw = raw.encode("cp437").decode("utf-8")
    return raw


def _escapes(raw: str) -> str | None:
    """``"absolute"`` or ``"outside"`` if the entry name leads out of the folder, else ``None``."""
    text = raw.replace("\\", "/")
    if "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return "absolute"
    if ".." in text.split("/"):
        return "outside"
    return None


def _relative_path(info: zipfile.ZipInfo, raw: str) -> PurePosixPath | None:
    """The entry's relative path (of a name that does not escape); ``None`` for folders, junk."""
    parts = [part for part in raw.replace("\\", "/").split("/") if part not in ("", ".")]
    if info.is_dir() or not parts:
        return None
    if any(part in JUNK_DIRS for part in parts) or parts[-1] in JUNK_FILES:
        return None
    if parts[-1].startswith("._"):
        return None
    return PurePosixPath(*parts)


def _safe_path(info: zipfile.ZipInfo, name: str) -> PurePosixPath | None:
    """The entry's relative path, ``None`` for folders and junk; rejects unsafe names."""
    raw = _entry_name(info)
    escape = _escapes(raw)
    if escape == "absolute":
        raise Rejected(
            f"{name} contains the absolute path {shown(raw)!r}; zip only the exercise folder's "
            "files with create_submission()."
        )
    if escape == "outside":
        raise Rejected(
            f"{name} contains the path {shown(raw)!r}, which leads outside the folder; zip only "
            "the exercise folder's files with create_submission()."
        )
    return _relative_path(info, raw)


def _entry_kind(info: zipfile.ZipInfo) -> int:
    """The entry's file type (``stat.S_IF*``) if a Unix zip tool stored one, else 0."""
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def _check_entry(info: zipfile.ZipInfo, path: PurePosixPath, name: str, limits: Limits) -> None:
    kind = _entry_kind(info)
    if kind == stat.S_IFLNK:
        raise Rejected(
            f"{name} contains a symbolic link ({shown(path)}); zip real files only "
            "(create_submission() does)."
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise Rejected(f"{name} contains a special file ({shown(path)}); zip regular files only.")
    if info.flag_bits & 0x1:
        raise Rejected(f"{name} is password-protected; make the zip again without a password.")
    if info.file_size > limits.max_file_bytes:
        raise Rejected(
            f"{name} holds {shown(path)} of {info.file_size / 2**20:.0f} MB, more than the limit "
            f"of {limits.max_file_bytes // 2**20} MB per file; leave large files out."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise Rejected(
            f"{name} holds {shown(path)}, compressed more than {limits.max_ratio:.0f}:1, which is "
            "how zip bombs look; hand in the files create_submission() packs."
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


def _import_zip(course_dir: Path, upload: Upload, target: Path, limits: Limits) -> int:
    """Unpack the checked zip into ``target`` (atomically); return the number of files."""
    files = check_zip(upload.path, limits, upload.name)
    staging_root = course_dir / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="collect-", dir=staging_root))
    try:
        unpacked = staging / "submission"
        unpacked.mkdir()
        _unpack(upload.path, files, unpacked, limits, shown(upload.name))
        mtime = datetime.fromtimestamp(upload.path.stat().st_mtime, tz=UTC)
        (unpacked / "timestamp.txt").write_text(mtime.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.rename(staging / "old")
        unpacked.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(files)


def _unpack(zip_path: Path, files: dict, folder: Path, limits: Limits, name: str) -> None:
    root = folder.resolve()
    total = 0
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for relative, info in sorted(files.items()):
                destination = (root / relative).resolve()
                if not destination.is_relative_to(root):
                    raise Rejected(f"{name} contains the unsafe path {shown(relative)!r}.")
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
                                f"{name} unpacks to more than it declares; make the zip "
                                "again with create_submission()."
                            )
                        sink.write(block)
                os.chmod(destination, 0o644)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise Rejected(
            f"{name} cannot be unpacked ({type(error).__name__}: {error}); make the zip "
            "again with create_submission() and upload it again."
        ) from error
    except RuntimeError as error:
        raise Rejected(
            f"{name} cannot be read ({error}); make the zip again without a password."
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
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(_manifest_path(course_dir, assignment), text.encode("utf-8"))
