"""Per-student result records of a course, read and written through the grader's database.

``collect`` writes a record for a rejected zip, ``grade`` one per graded submission (through
the engine), and ``report`` turns the current ones into ``course/grades/<assignment>.csv``. A
record is a :class:`~autograder.core.records.GradeRecord` as a dict, with (at least) the keys of
:data:`COLUMNS`; extra keys are kept (``"details"``: a list of ``{"item", "score", "max",
"reason"}`` explaining lost points, ``"flags"``, ``"finished"``: when it was decided, ISO 8601
UTC). The store (:mod:`autograder.store`) keeps them; these functions are its per-student view
for the workflow commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .core.records import COLUMNS
from .core.text import STUDENT_ID_PATTERN, check_student_id, clean_text, is_student_id
from .store import GradingRow, Store
from .store.store import DATABASE_FILE, DATABASE_VARIABLE

__all__ = [
    "COLUMNS",
    "STUDENT_ID_PATTERN",
    "check_student_id",
    "clean_text",
    "delete_result",
    "is_student_id",
    "read_result",
    "read_results",
    "write_result",
]


def write_result(course_dir: Path, assignment: str, student_id: str, record: dict) -> None:
    """Store ``record`` as the current result of ``student_id`` (a row of no submission to
    grade, e.g. a rejected upload). Columns missing from ``record`` are stored as ``None``."""
    check_student_id(student_id)
    full: dict[str, Any] = {column: record.get(column) for column in COLUMNS}
    full.update({k: v for k, v in record.items() if k not in full})
    full["student_id"] = student_id
    Store.for_course(course_dir).write_record(assignment, student_id, full)


def read_result(course_dir: Path, assignment: str, student_id: str) -> dict | None:
    """The current record of ``student_id``, or ``None`` if there is none yet."""
    check_student_id(student_id)
    if not _has_store(course_dir):
        return None
    row = Store.for_course(course_dir).current(assignment).get(student_id)
    return _record(row) if row is not None else None


def read_results(course_dir: Path, assignment: str) -> list[dict]:
    """Every current record of ``assignment``, sorted by student id."""
    if not _has_store(course_dir):
        return []
    current = Store.for_course(course_dir).current(assignment)
    return [_record(current[student]) for student in sorted(current)]


def delete_result(course_dir: Path, assignment: str, student_id: str) -> None:
    """Forget every record of ``student_id`` (no error if there is none)."""
    check_student_id(student_id)
    if _has_store(course_dir):
        Store.for_course(course_dir).forget(assignment, student_id)


def _has_store(course_dir: Path) -> bool:
    """Whether the course has a database (or records of an earlier version to import)."""
    course_dir = Path(course_dir)
    if os.environ.get(DATABASE_VARIABLE):
        return True
    return (course_dir / DATABASE_FILE).exists() or (course_dir / "results").is_dir()


def _record(row: GradingRow) -> dict:
    record = dict(row.record or {})
    for column in COLUMNS:
        record.setdefault(column, None)
    record["student_id"] = row.student_id
    if row.finished is not None:
        record["finished"] = row.finished.isoformat() + "+00:00"
    return record
