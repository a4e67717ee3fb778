"""What the API shows of uploads: :func:`submission_json`, queue positions, the counted upload.

Before the deadline the hidden check's own sentence (it states the accuracy on the graded part
of the hidden set) is replaced by one that says only whether the pass mark was reached, with
the accuracy on the public part; the student sees ``public_accuracy``, not the graded accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import course
from ..core.records import COLUMNS, Status
from ..store.uploads import UploadView

SHOWN_STATUS = {
    Status.QUEUED: "queued",
    Status.RUNNING: "running",
    Status.GRADED: "graded",
    Status.TIMEOUT: "graded",
    Status.REJECTED: "rejected",
    Status.ERROR: "error",
}
"""A ``timeout`` row is shown as ``graded``: its points come from the trusted checks; only the
notebook run for the feedback stopped (its message says so)."""
COUNTABLE = {Status.GRADED, Status.TIMEOUT}


def iso(moment) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def positions(unfinished: Iterable[UploadView]) -> dict[int, int]:
    """Grading row id -> place in the queue (1: next) of each queued row, in the order the
    engine's priorities give: each student's first unfinished upload before anyone's second,
    then by age."""
    from .dispatcher import ranks

    views = list(unfinished)
    rank = ranks(views)
    queued = [v for v in views if v.grading.state is Status.QUEUED]
    queued.sort(key=lambda v: (rank[v.grading.id], v.grading.id))
    return {view.grading.id: place for place, view in enumerate(queued, 1)}


def counted(uploads: Iterable[UploadView], rule: str) -> dict[str, UploadView]:
    """Student id -> the upload that counts: the best graded total (``best``; the newer of
    equal ones) or the newest graded (``last``)."""
    found: dict[str, UploadView] = {}
    for view in sorted(uploads, key=lambda v: (v.created, v.id)):
        if view.grading.state not in COUNTABLE or not view.grading.record:
            continue
        old = found.get(view.student_id)
        total = view.grading.record.get("total") or 0.0
        if rule == "last" or old is None or total >= (old.grading.record.get("total") or 0.0):
            found[view.student_id] = view
    return found


def _hidden_item(assignment: str) -> str:
    return course.HIDDEN_CELL.get(assignment) or "\0"


def redacted(record: dict, assignment: str, before_deadline: bool) -> dict:
    """``record`` as a student may see it now (see the module docstring)."""
    if not before_deadline:
        return record
    hidden = _hidden_item(assignment)
    details = []
    replaced = {}
    for part in record.get("details") or []:
        if part.get("item", "").split(": ", 1)[-1] == hidden and part.get("reason"):
            public = record.get("public_accuracy")
            shown = (
                f" Your accuracy on the public part: {public:.2f}." if public is not None else ""
            )
            passed = part.get("score", 0) >= part.get("max", 0)
            sentence = (
                "Your model reaches the pass mark on the hidden test set."
                if passed
                else "Your model does not reach the pass mark on the hidden test set yet: "
                "improve the classifier."
            )
            sentence += shown + " The accuracy on the graded part is shown after the deadline."
            replaced[part["reason"]] = sentence
            part = {**part, "reason": sentence}
        details.append(part)
    message = record.get("message") or ""
    return {**record, "details": details, "message": replaced.get(message, message)}


def submission_json(
    view: UploadView,
    position: int | None,
    counts: bool,
    before_deadline: bool,
) -> dict:
    """The API's answer for one upload (DESIGN.md's fields)."""
    row = view.grading
    record = redacted(row.record or {}, view.assignment, before_deadline) if row.state.final else {}
    return {
        "id": view.id,
        "assignment": view.assignment,
        "status": SHOWN_STATUS[row.state],
        "position": position if row.state is Status.QUEUED else None,
        "tests_score": record.get("tests_score"),
        "tests_max": record.get("tests_max"),
        "public_accuracy": record.get("public_accuracy"),
        "hidden_score": record.get("hidden_score"),
        "hidden_max": record.get("hidden_max"),
        "total": record.get("total"),
        "total_max": record.get("total_max"),
        "message": record.get("message") or "",
        "parts": [
            {
                "name": part.get("item", ""),
                "score": part.get("score"),
                "max": part.get("max"),
                "message": part.get("reason") or "",
            }
            for part in record.get("details") or []
        ],
        "counts": counts,
        "created": iso(view.created),
        "finished": iso(row.finished),
        "file_name": view.file_name,
    }


def grade_row(student_id: str, record: dict) -> dict:
    """A row of the grade table (``course/grades/ASSIGNMENT.csv``'s columns, and flags)."""
    row = {column: record.get(column) for column in COLUMNS}
    row["student_id"] = student_id
    row["flags"] = record.get("flags") or ""
    return row
