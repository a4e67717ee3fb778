"""The record of one graded submission: :class:`GradeRecord`, made of :class:`PartResult`.

A record is what a grading worker returns and what the store keeps, written once per
(assignment, student, submission sha256, grader version). The grade table
(``course/grades/<assignment>.csv``), the gradebook, the feedback page, Gradescope's
``results.json`` and the service's JSON are views of it (:meth:`GradeRecord.to_dict` is the
stored form)::

    student_id       str     the student id
    status           Status  graded, timeout, rejected or error (queued/running: not yet)
    tests_score      float   points from the trusted checks of the graded test cells
    tests_max        float   points available from those cells
    hidden_accuracy  float   accuracy in [0, 1] on the graded part of the hidden test set
    public_accuracy  float   accuracy on the public part of the hidden set (None: no split)
    hidden_score     float   points from the hidden-accuracy check
    hidden_max       float   points available from it (0 for an exercise without one)
    total            float   tests_score + hidden_score
    total_max        float   tests_max + hidden_max
    message          str     one sentence the student can act on ("" when nothing was lost)
    flags            str     why an instructor should look at this submission ("" if nothing)
    details          list    one PartResult per graded cell, in the notebook's order
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
"""The columns of the grade table, in order (DESIGN.md's contract)."""


class Status(StrEnum):
    """Where a submission stands. The last four are final: a record with one is written once."""

    QUEUED = "queued"
    RUNNING = "running"
    GRADED = "graded"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    ERROR = "error"

    @property
    def final(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


@dataclass(frozen=True)
class Verdict:
    """The trusted verdict of one graded part: its points and why points were lost.

    ``timed_out`` says that the part's check was stopped by its time limit (the record's status
    becomes ``timeout``; nothing reads that from the message). ``suspect`` says that points were
    lost where the same public check failed on this code, or on poisoned probe data
    (:attr:`autograder.grading.trusted.Judgement.suspect`): if the notebook's own test of the part
    passed, the record is flagged. It never changes the points.
    """

    score: float
    max_score: float
    message: str = ""
    timed_out: bool = False
    suspect: bool = False

    @classmethod
    def of(cls, passed: bool, points: float, message: str, timed_out: bool = False) -> Verdict:
        """All or nothing: ``points`` when ``passed``, else 0 with ``message``."""
        return cls(points if passed else 0.0, points, "" if passed else message, timed_out)

    @property
    def lost(self) -> bool:
        return not self.score >= self.max_score


@dataclass(frozen=True)
class PartResult:
    """One graded part of a record (a graded cell, or the hidden-accuracy check)."""

    item: str
    """``"<notebook>: <grade id>"``."""
    score: float
    max: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "score": self.score, "max": self.max, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> PartResult:
        return cls(str(data["item"]), float(data["score"]), float(data["max"]), data["reason"])

    @property
    def grade_id(self) -> str:
        return self.item.split(": ", 1)[-1]


@dataclass
class GradeRecord:
    """One graded (or rejected) submission; see the module docstring for the fields."""

    status: Status
    student_id: str = ""
    tests_score: float | None = None
    tests_max: float | None = None
    hidden_accuracy: float | None = None
    hidden_score: float | None = None
    hidden_max: float | None = None
    total: float | None = None
    total_max: float | None = None
    message: str = ""
    flags: str = ""
    details: list[PartResult] = field(default_factory=list)
    public_accuracy: float | None = None
    retryable: bool = False
    """A failure of the grader itself (not the submission's): graded again by the next run."""

    def to_dict(self) -> dict[str, Any]:
        """The stored form: the grade table's columns first, then the rest; finite numbers."""
        data: dict[str, Any] = {
            "student_id": self.student_id,
            "status": self.status.value,
            "tests_score": _finite(self.tests_score),
            "tests_max": _finite(self.tests_max),
            "hidden_accuracy": _finite(self.hidden_accuracy),
            "hidden_score": _finite(self.hidden_score),
            "hidden_max": _finite(self.hidden_max),
            "total": _finite(self.total),
            "total_max": _finite(self.total_max),
            "message": self.message,
            "flags": self.flags,
            "details": [part.to_dict() for part in self.details],
            "public_accuracy": _finite(self.public_accuracy),
        }
        if self.retryable:
            data["retryable"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GradeRecord:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            status=Status(data.get("status") or "error"),
            student_id=str(data.get("student_id") or ""),
            tests_score=number("tests_score"),
            tests_max=number("tests_max"),
            hidden_accuracy=number("hidden_accuracy"),
            hidden_score=number("hidden_score"),
            hidden_max=number("hidden_max"),
            total=number("total"),
            total_max=number("total_max"),
            message=str(data.get("message") or ""),
            flags=str(data.get("flags") or ""),
            details=[PartResult.from_dict(d) for d in data.get("details") or []],
            public_accuracy=number("public_accuracy"),
            retryable=bool(data.get("retryable")),
        )

    @classmethod
    def from_parts(
        cls,
        status: Status,
        parts: list[PartResult],
        hidden_item: str | None,
        message: str,
        *,
        hidden_accuracy: float | None = None,
        public_accuracy: float | None = None,
        flags: str = "",
        retryable: bool = False,
    ) -> GradeRecord:
        """Sums of the parts: ``hidden_item`` (``"<notebook>: <grade id>"``) is the hidden check."""
        tests = [p for p in parts if p.item != hidden_item]
        hidden = [p for p in parts if p.item == hidden_item]
        tests_score = round(float(sum(p.score for p in tests)), 4)
        tests_max = round(float(sum(p.max for p in tests)), 4)
        hidden_score = float(hidden[0].score) if hidden else 0.0
        hidden_max = float(hidden[0].max) if hidden else 0.0
        return cls(
            status=status,
            tests_score=tests_score,
            tests_max=tests_max,
            hidden_accuracy=hidden_accuracy,
            hidden_score=hidden_score,
            hidden_max=hidden_max,
            total=round(tests_score + hidden_score, 4),
            total_max=tests_max + hidden_max,
            message=message,
            flags=flags,
            details=list(parts),
            public_accuracy=public_accuracy,
            retryable=retryable,
        )


def _finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing or not a finite number."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
