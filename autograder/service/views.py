"""What the API shows of uploads: :func:`submission_json`, queue positions, the counted upload.

Before the deadline the hidden check's own sentence (it states the accuracy on the graded part
of the hidden set) is replaced by one that says only whether the pass mark was reached, with
the accuracy on the public part; the student sees ``public_accuracy``, not the graded accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import course
from ..core.records import COLUMNS, Status
from ..store.uploads import Queued, UploadView

SHOWN_STATUS = {
    Status.QUEUED: "queued",
    Status.RUNNING: "running",
    Status.GRADED: "graded",
    Status.TIMEOUT: "graded",
    Status.REJECTED: "rejected",
    Status.ERROR: "error",
}
"""The API's five states (DESIGN.md). A ``timeout`` row (a part's check or the notebook's run
for the feedback was stopped at its time limit, the rest graded) is ``graded``: its points are
decided by the trusted checks and it may count; ``timed_out`` is true and :data:`TIMED_OUT`
comes first in its message. A grading that outlives the whole job's limit is another thing: the
dispatcher stops it and it ends ``error`` with its own sentence."""
COUNTABLE = {Status.GRADED, Status.TIMEOUT}
TIMED_OUT = (
    "Grading was stopped at a time limit: what had not finished by then got no points (see the "
    "parts below); make the slow code faster and upload again."
)


def iso(moment) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def ranks(unfinished: Iterable[Queued]) -> dict[int, int]:
    """Grading row id -> how many unfinished rows of the same student and assignment come
    before it (0 for each student's first): the engine's priority is minus this."""
    seen: dict[tuple[str, str], int] = {}
    found = {}
    for entry in sorted(unfinished, key=lambda e: e.grading_id):
        key = (entry.assignment, entry.student_id)
        found[entry.grading_id] = seen.get(key, 0)
        seen[key] = found[entry.grading_id] + 1
    return found


def positions(unfinished: Iterable[Queued]) -> dict[int, int]:
    """Grading row id -> place in the queue (1: next) of each queued row, in the order the
    engine's priorities give: each student's first unfinished upload before anyone's second,
    then by age."""
    entries = list(unfinished)
    rank = ranks(entries)
    queued = [e for e in entries if e.state is Status.QUEUED]
    queued.sort(key=lambda e: (rank[e.grading_id], e.grading_id))
    return {entry.grading_id: place for place, entry in enumerate(queued, 1)}


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


def hidden_replacements(record: dict, assignment: str, before_deadline: bool) -> dict[str, str]:
    """The hidden check's sentence -> the one a student sees before the deadline (also without
    its final period, as a record's message quotes it); empty after the deadline."""
    if not before_deadline:
        return {}
    hidden = _hidden_item(assignment)
    for part in record.get("details") or []:
        reason = part.get("reason")
        if part.get("item", "").split(": ", 1)[-1] != hidden or not reason:
            continue
        public = record.get("public_accuracy")
        shown = f" Your accuracy on the public part: {public:.2f}." if public is not None else ""
        passed = part.get("score", 0) >= part.get("max", 0)
        sentence = (
            "Your model reaches the pass mark on the hidden test set."
            if passed
            else "Your model does not reach the pass mark on the hidden test set yet: "
            "improve the classifier."
        )
        sentence += shown + " The accuracy on the graded part is shown after the deadline."
        return {reason: sentence, reason.rstrip("."): sentence.rstrip(".")}
    return {}


def replaced(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def redacted(record: dict, assignment: str, before_deadline: bool) -> dict:
    """``record`` as a student may see it now (see the module docstring)."""
    replacements = hidden_replacements(record, assignment, before_deadline)
    if not replacements:
        return record
    details = [
        {**part, "reason": replaced(part.get("reason") or "", replacements)}
        for part in record.get("details") or []
    ]
    message = replaced(record.get("message") or "", replacements)
    return {**record, "details": details, "message": message}


def submission_json(
    view: UploadView,
    position: int | None,
    counts: bool,
    before_deadline: bool,
    feedback: bool = False,
) -> dict:
    """The API's answer for one upload (DESIGN.md's fields; ``feedback``: its feedback page
    exists, whose address is given)."""
    row = view.grading
    record = redacted(row.record or {}, view.assignment, before_deadline) if row.state.final else {}
    timed_out = row.state is Status.TIMEOUT
    message = record.get("message") or ""
    if timed_out:
        message = f"{TIMED_OUT} {message}".strip()
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
        "message": message,
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
        "timed_out": timed_out,
        "feedback": f"/api/submissions/{view.id}/feedback" if feedback else None,
    }


def grade_row(student_id: str, record: dict) -> dict:
    """A row of the grade table (``course/grades/ASSIGNMENT.csv``'s columns, and flags)."""
    row = {column: record.get(column) for column in COLUMNS}
    row["student_id"] = student_id
    row["flags"] = record.get("flags") or ""
    return row
