"""Per-student result records: the one place grading outcomes are kept between the steps.

``collect`` writes a record for a rejected zip, ``grade`` writes one per graded submission and
``report`` turns all of them into ``course/grades/<assignment>.csv``. A record is a JSON object
stored at ``<course_dir>/results/<assignment>/<student_id>.json`` with (at least) the keys of
:data:`COLUMNS`::

    student_id       str    the student id (also the file name)
    status           str    "graded", or a short reason: "rejected", "timeout", "error", ...
    tests_score      float  points from nbgrader's graded test cells (None if not graded)
    tests_max        float  points available from those cells
    hidden_accuracy  float  accuracy in [0, 1] on the hidden test set (None if not measured)
    hidden_score     float  points from the hidden-accuracy check
    hidden_max       float  points available from it (0 for an exercise without one)
    total            float  tests_score + hidden_score
    total_max        float  tests_max + hidden_max
    message          str    one sentence the student can act on ("" when nothing was lost)

Extra keys are allowed and kept (for instance ``"details"``: a list of
``{"item": str, "score": float, "max": float, "reason": str}`` explaining lost points, which the
report shows on the feedback page). Missing columns are written as ``None``.

Records are written atomically (temporary file in the same folder, fsync, ``os.replace``), so an
interrupted run leaves either the old record or the new one, never half of one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .files import atomic_write

COLUMNS = [
    "student_id",
    "status",
    "tests_score",
    "tests_max",
    "hidden_accuracy",
    "hidden_score",
    "hidden_max",
    "total",
    "total_max",
    "message",
]

STUDENT_ID_PATTERN = re.compile(r"\A(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?<!\.)\Z")
"""A student id names folders in the course (nbgrader's layout) and rows of the grade table: 1-64
ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit, not ending with a
dot and without ``..``. The grader never names its own work folders after a student id."""


_ESCAPE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"[\t\n\r\u2028\u2029]")


def clean_text(value: object, max_chars: int = 2000, keep_spaces: bool = False) -> str:
    """``value`` as one line that is safe in a terminal, the CSV and HTML.

    Terminal escape sequences and control characters (also invisible and bidirectional ones)
    are removed, tabs and line breaks become spaces; runs of spaces are collapsed unless
    ``keep_spaces``; at most ``max_chars`` characters are kept.
    """
    text = _BREAKS.sub(" ", _CONTROL.sub("", _ESCAPE.sub("", "" if value is None else str(value))))
    if not keep_spaces:
        text = " ".join(text.split())
    return text[:max_chars]


def is_student_id(value: object) -> bool:
    """Whether ``value`` is a usable student id (:data:`STUDENT_ID_PATTERN`)."""
    return isinstance(value, str) and STUDENT_ID_PATTERN.match(value) is not None


def check_student_id(student_id: str) -> str:
    """Return ``student_id`` if it is a usable student id, else raise ``ValueError``."""
    if not is_student_id(student_id):
        shown = "".join(c if c.isprintable() else "?" for c in str(student_id))[:80]
        raise ValueError(
            f"Student id {shown!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' and not ending with a dot."
        )
    return student_id


def result_path(course_dir: Path, assignment: str, student_id: str) -> Path:
    """Where the record of ``student_id`` for ``assignment`` is stored."""
    check_student_id(student_id)
    return Path(course_dir) / "results" / assignment / f"{student_id}.json"


def write_result(course_dir: Path, assignment: str, student_id: str, record: dict) -> Path:
    """Atomically write ``record`` as the result of ``student_id``; return the file's path.

    ``record["student_id"]`` is set to ``student_id``; columns missing from ``record`` are
    stored as ``None``; extra keys are kept. Values must be JSON-serializable.
    """
    path = result_path(course_dir, assignment, student_id)
    full: dict[str, Any] = {column: record.get(column) for column in COLUMNS}
    full.update({k: v for k, v in record.items() if k not in full})
    full["student_id"] = student_id
    text = json.dumps(full, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, text.encode("utf-8"))


def read_result(course_dir: Path, assignment: str, student_id: str) -> dict | None:
    """Return the stored record of ``student_id``, or ``None`` if there is none yet."""
    path = result_path(course_dir, assignment, student_id)
    if not path.is_file():
        return None
    return _load(path)


def read_results(course_dir: Path, assignment: str) -> list[dict]:
    """Return every stored record of ``assignment``, sorted by student id."""
    folder = Path(course_dir) / "results" / assignment
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.glob("*.json") if is_student_id(p.stem))
    return [_load(p) for p in paths]


def delete_result(course_dir: Path, assignment: str, student_id: str) -> None:
    """Forget the record of ``student_id`` (no error if there is none)."""
    result_path(course_dir, assignment, student_id).unlink(missing_ok=True)


def _load(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Result file {path} cannot be read ({error}); delete it and run grade again."
        ) from error
    if not isinstance(record, dict):
        raise ValueError(f"Result file {path} is not a JSON object; delete it and run grade again.")
    for column in COLUMNS:
        record.setdefault(column, None)
    record["student_id"] = path.stem
    return record
