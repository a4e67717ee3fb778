"""``release``: build the student version of each assignment and scan it for leaks.

For every assignment:

1. ``course/source/<assignment>/`` is refreshed from the repository (:mod:`autograder.course`).
2. nbgrader's ``generate_assignment`` (its real API) writes ``course/release/<assignment>/``: it
   clears solution regions, hidden tests and outputs in the notebooks and records the checksums
   of the graded cells in the gradebook.
3. nbgrader copies ``.py`` files as they are, so this step strips their solution regions itself:
   each region becomes ``# YOUR CODE HERE`` plus ``raise NotImplementedError("Implement
   <qualified name> in exercise_code/<file>.py")`` at the region's indentation, where the
   qualified name is that of the innermost enclosing ``def``/``class``.
4. The zip is staged with every file under a top folder ``<assignment>/``, so it unpacks into a
   folder that finds its data in a ``data/`` folder beside it. It is deterministic (sorted
   entries, fixed timestamps): releasing twice gives the same bytes.
5. The leak scan reads ``course/release/<assignment>/`` and the staged zip and fails the command
   if it finds a solution or hidden-test marker, a non-trivial line of solution code from the
   source notebooks or modules, or data and model files (``data/``, ``hidden/``, ``models/``,
   IDX files, ``.pt``/``.pt2``/``.pth``, zips). Only a clean zip becomes
   ``dist/<assignment>.zip``; a leaking release is deleted (folder and zip).

Entry point: :func:`release`.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .course import (
    MARKER_WORDS,
    AutograderError,
    course_lock,
    exercise_dir,
    nbgrader_api,
    release_dir,
    setup_course,
    source_dir,
)

SCAN_MARKERS = MARKER_WORDS
"""What nbgrader itself matches (substrings, with or without the leading ``###``)."""

FORBIDDEN_DIRS = {
    "data",
    "hidden",
    "models",
    "grading",
    "__MACOSX",
    ".ipynb_checkpoints",
    "__pycache__",
}
"""Folders never released: data, models, caches, and ``grading/`` (the trusted checks)."""
FORBIDDEN_FILE = re.compile(r"(-ubyte(\.gz)?|\.pt2?|\.pth|\.zip|\.pkl(\.gz)?|\.npy|\.npz)$")
MIN_LEAK_CHARS = 8
"""Solution lines shorter than this (``)``, ``x = 1``, ``pass``...) are too common to count."""

MAX_GENERIC_CHARS = 40
"""A solution line this short that also occurs in given code is not a leak; a longer one is,
wherever it appears (a copy of solution code in a given file is exactly what the scan is for)."""

ZIP_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SolutionRegion:
    """A solution region of a ``.py`` file: 0-based line numbers of its two marker lines."""

    begin: int
    end: int
    indent: str


def release(course_dir: Path, assignments: list[str], dist_dir: Path = Path("dist")) -> list[Path]:
    """Release ``assignments``; return the written zips. Raises ``AutograderError`` on a leak."""
    for assignment in assignments:
        exercise_dir(assignment)
    with course_lock(course_dir, "release"):
        return _release_locked(course_dir, assignments, dist_dir)


def _release_locked(course_dir: Path, assignments: list[str], dist_dir: Path) -> list[Path]:
    course_dir = setup_course(course_dir, assignments)
    zips = []
    for assignment in assignments:
        zip_path = Path(dist_dir) / f"{assignment}.zip"
        zip_path.unlink(missing_ok=True)
        folder = _generate(course_dir, assignment)
        staged = write_zip(folder, zip_path.with_name(f".{zip_path.name}.{os.getpid()}.tmp"))
        leaks = scan_release(
            source_dir(course_dir, assignment),
            folder,
            staged,
            zip_path.name,
            trusted_checks=exercise_dir(assignment) / "grading",
        )
        if leaks:
            staged.unlink()
            shutil.rmtree(folder)
            more = f"; and {len(leaks) - 5} more" if len(leaks) > 5 else ""
            raise AutograderError(
                f"The release of {assignment} leaks ({'; '.join(leaks[:5])}{more}); fix the "
                "source and release again (the student version and its zip were deleted)."
            )
        os.replace(staged, zip_path)
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        print(f"Released {assignment}: {count} files in {folder}, {zip_path} (leak scan clean).")
        zips.append(zip_path)
    return zips


def _generate(course_dir: Path, assignment: str) -> Path:
    """Run nbgrader's generate_assignment, then strip the ``.py`` files; return the folder."""
    result = nbgrader_api(course_dir).generate_assignment(assignment, force=True)
    if not result.get("success"):
        detail = _last_error_line(result.get("error") or result.get("log") or "")
        raise AutograderError(
            f"nbgrader could not generate the student version of {assignment} ({detail}); "
            "fix the source notebook and release again."
        )
    folder = release_dir(course_dir, assignment)
    try:
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).as_posix()
            text = path.read_text(encoding="utf-8")
            stripped = strip_solutions(text, relative)
            if stripped != text:
                path.chmod(0o644)
                path.write_text(stripped, encoding="utf-8")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _last_error_line(text: str) -> str:
    """The most specific error line of an nbgrader log (its own summary lines left out)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if re.search(r"\w(Error|Exception): ", line) and "Please see the" not in line
    ]
    return (errors or lines or ["no details"])[-1]


def solution_regions(text: str, relative: str) -> list[SolutionRegion]:
    """The solution regions of a ``.py`` file (``relative`` names it in error messages)."""
    begin_marker, end_marker = "### " + SCAN_MARKERS[0], "### " + SCAN_MARKERS[1]
    regions, begin = [], None
    for number, line in enumerate(text.splitlines()):
        if begin_marker in line:
            if begin is not None:
                raise AutograderError(
                    f"{relative} line {number + 1} opens a solution region inside another one; "
                    "close the first region before opening the next."
                )
            begin = number
        elif end_marker in line:
            if begin is None:
                raise AutograderError(
                    f"{relative} line {number + 1} closes a solution region that was never "
                    "opened; add the opening marker or remove this line."
                )
            indent = re.match(r"\s*", text.splitlines()[begin]).group(0)
            regions.append(SolutionRegion(begin, number, indent))
            begin = None
    if begin is not None:
        raise AutograderError(
            f"{relative} line {begin + 1} opens a solution region that is never closed; "
            "add the closing marker."
        )
    return regions


def _enclosing_names(text: str) -> list[tuple[int, int, str]]:
    """``(first_line, last_line, qualified_name)`` (1-based) of every def/class in ``text``."""
    spans = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                spans.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    return spans


def strip_solutions(text: str, relative: str) -> str:
    """Replace each solution region of a ``.py`` file by a stub that names what to implement.

    ``relative`` is the file's path inside the exercise folder, e.g. ``exercise_code/model.py``.
    Hidden-test regions are removed without a stub. Raises ``AutograderError`` if the markers do
    not pair up or the stripped file is not valid Python.
    """
    regions = solution_regions(text, relative)
    if not regions and SCAN_MARKERS[2] not in text:
        return text
    try:
        spans = _enclosing_names(text)
    except SyntaxError as error:
        raise AutograderError(
            f"{relative} is not valid Python (line {error.lineno}); fix it and release again."
        ) from error
    lines = text.splitlines(keepends=True)
    out, position = [], 0
    for region in regions:
        out.extend(lines[position : region.begin])
        # Comments are not part of the AST, so the region's first line decides where it is.
        inside = [s for s in spans if s[0] < region.begin + 1 <= s[1]]
        what = max(inside, key=lambda s: s[0])[2] if inside else "the marked part"
        out.append(f"{region.indent}# YOUR CODE HERE\n")
        out.append(f'{region.indent}raise NotImplementedError("Implement {what} in {relative}")\n')
        position = region.end + 1
    out.extend(lines[position:])
    stripped = _drop_hidden_tests("".join(out))
    try:
        compile(stripped, relative, "exec")
    except SyntaxError as error:
        raise AutograderError(
            f"The student version of {relative} is not valid Python (line {error.lineno}); put "
            "each solution region inside a function body and release again."
        ) from error
    return stripped


def _drop_hidden_tests(text: str) -> str:
    begin, end = "### " + SCAN_MARKERS[2], "### " + SCAN_MARKERS[3]
    kept, hidden = [], False
    for line in text.splitlines(keepends=True):
        if begin in line:
            hidden = True
        elif end in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "".join(kept)


def write_zip(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` as ``<folder name>/...`` deterministically; return ``zip_path``.

    Entries are sorted and carry a fixed date and mode, so the same files give the same bytes.
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    zip_path.write_bytes(buffer.getvalue())
    return zip_path


def _notebook_cells(text: str) -> list[dict]:
    try:
        notebook = json.loads(text)
    except ValueError:
        return []
    return notebook.get("cells", []) if isinstance(notebook, dict) else []


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _split_regions(text: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """Lines of ``text`` inside and outside ``begin``/``end`` regions (markers excluded)."""
    inside, outside, active = [], [], False
    for line in text.splitlines():
        if begin in line:
            active = True
        elif end in line:
            active = False
        else:
            (inside if active else outside).append(line)
    return inside, outside


def solution_lines(source_folder: Path) -> tuple[set[str], set[str]]:
    """Stripped lines of solution code in the source version, and the lines it also gives away.

    Returns ``(secret, given)``: ``secret`` holds the lines inside solution or hidden-test regions
    of notebooks and ``.py`` files (and all lines of notebook solution cells without markers) that
    have at least :data:`MIN_LEAK_CHARS` characters, except short generic ones (at most
    :data:`MAX_GENERIC_CHARS`, e.g. ``loss.backward()``) that the given text also contains;
    ``given`` holds every line outside those regions, which the release may legitimately contain.
    """
    secret: set[str] = set()
    given: set[str] = set()

    def add(text: str, whole_cell_is_secret: bool = False) -> None:
        inside, outside = [], text.splitlines()
        for begin, end in ((SCAN_MARKERS[0], SCAN_MARKERS[1]), (SCAN_MARKERS[2], SCAN_MARKERS[3])):
            more, outside = _split_regions("\n".join(outside), begin, end)
            inside += more
        if whole_cell_is_secret and not inside:
            inside, outside = outside, []
        secret.update(line.strip() for line in inside)
        given.update(line.strip() for line in outside)

    for path in sorted(source_folder.rglob("*")):
        if path.suffix == ".py":
            add(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".ipynb":
            for cell in _notebook_cells(path.read_text(encoding="utf-8", errors="replace")):
                metadata = cell.get("metadata", {}).get("nbgrader", {})
                add(_cell_source(cell), whole_cell_is_secret=bool(metadata.get("solution")))
    given_text = "\n".join(sorted(given))
    secret = {
        line
        for line in secret
        if len(line) >= MIN_LEAK_CHARS and (len(line) > MAX_GENERIC_CHARS or line not in given_text)
    }
    return secret, given


def _released_files(
    folder: Path, zip_path: Path, zip_label: str
) -> list[tuple[str, PurePosixPath, bytes]]:
    """``(label, path inside the zip, content)`` of every file and folder of the release."""
    entries = []
    for path in sorted(folder.rglob("*")):
        inner = PurePosixPath(folder.name, path.relative_to(folder).as_posix())
        data = path.read_bytes() if path.is_file() else b""
        entries.append((str(path), inner, data))
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            data = b"" if info.is_dir() else archive.read(info)
            entries.append((f"{zip_label}:{info.filename}", PurePosixPath(info.filename), data))
    return entries


def _released_text(name: str, data: bytes) -> str:
    """The text a reader sees in a released file (for notebooks: cell sources and outputs)."""
    text = data.decode("utf-8", errors="replace")
    if not name.endswith(".ipynb"):
        return text
    parts = [text]
    for cell in _notebook_cells(text):
        parts.append(_cell_source(cell))
        for output in cell.get("outputs", []):
            for value in [output.get("text", "")] + list(output.get("data", {}).values()):
                parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def check_lines(folder: Path, given: set[str]) -> set[str]:
    """Lines of the trusted checks in ``folder`` that would reveal them in a release: longer than
    :data:`MAX_GENERIC_CHARS` characters, no comment, and nowhere in the given code's text."""
    given_text = "\n".join(sorted(given))
    lines = set()
    for path in sorted(Path(folder).glob("*.py")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            revealing = len(line) > MAX_GENERIC_CHARS and not line.startswith("#")
            if revealing and line not in given_text:
                lines.add(line)
    return lines


def scan_release(
    source_folder: Path,
    folder: Path,
    zip_path: Path,
    zip_label: str | None = None,
    trusted_checks: Path | None = None,
) -> list[str]:
    """Every leak in the released ``folder`` and ``zip_path``, as short descriptions.

    Looks for nbgrader's markers (as bytes, in any file), for lines of secret solution code
    (:func:`solution_lines`) and, given ``trusted_checks`` (an exercise's ``grading/`` folder),
    lines of the trusted checks that the given code does not contain, anywhere in the text of
    any file (for notebooks also in the cell sources and outputs, decoded from JSON), and for
    files and folders that must never be released (data, hidden test data, models, trusted
    checks, archives).
    """
    secret, given = solution_lines(source_folder)
    secret |= check_lines(trusted_checks, given) if trusted_checks else set()
    leaks = []
    for name, inner, data in _released_files(folder, zip_path, zip_label or str(zip_path)):
        parts = inner.parts[1:]
        if any(part in FORBIDDEN_DIRS for part in parts) or FORBIDDEN_FILE.search(inner.name):
            leaks.append(f"{name} must not be released")
            continue
        for marker in SCAN_MARKERS:
            if marker.encode() in data:
                leaks.append(f"{name} contains the marker {marker!r}")
        text = _released_text(name, data)
        found = sorted(line for line in secret if line in text)
        if found:
            leaks.append(f"{name} contains solution code {found[0][:60]!r}")
    return sorted(set(leaks))
