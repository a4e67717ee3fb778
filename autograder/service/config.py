"""What the service was given: :class:`ServiceConfig`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import AutograderError
from ..core.settings import GradeSettings

MiB = 2**20
COUNTS = ("best", "last")


@dataclass(frozen=True)
class ServiceConfig:
    """The service's course, database, engine and rules.

    ``deadline``: a UTC time without time zone (None: no deadline), for every assignment but
    those that ``deadlines`` gives their own (``--deadline ASSIGNMENT=ISO8601``); ``counts``: per
    assignment,
    which upload counts, ``best`` (the default) or ``last``; ``behind_https``: the service sits
    behind a TLS proxy (its cookies get ``Secure``); ``job_timeout_s``: a grading still running
    after this long is stopped and ends ``error`` (default: the grader's own limits plus room).
    """

    course_dir: Path
    database: str | None = None
    scheduler: str | None = None
    jobs: int = 1
    deadline: datetime | None = None
    deadlines: Mapping[str, datetime] = field(default_factory=dict)
    max_upload_bytes: int = 20 * MiB
    daily_cap: int = 5
    counts: Mapping[str, str] = field(default_factory=dict)
    behind_https: bool = False
    settings: GradeSettings = field(default_factory=GradeSettings.from_env)
    job_timeout_s: float | None = None

    def counting(self, assignment: str) -> str:
        return self.counts.get(assignment, "best")

    def deadline_for(self, assignment: str) -> datetime | None:
        return self.deadlines.get(assignment, self.deadline)

    def deadline_passed(self, assignment: str, at: datetime | None = None) -> bool:
        deadline = self.deadline_for(assignment)
        moment = at or datetime.now(UTC).replace(tzinfo=None)
        return deadline is not None and moment >= deadline

    @property
    def job_limit_s(self) -> float:
        if self.job_timeout_s is not None:
            return self.job_timeout_s
        s = self.settings
        return s.autograde_timeout_s + s.model_timeout_s + 2 * s.probe_timeout_s + 300


def parse_deadline(text: str | None) -> datetime | None:
    """An ISO 8601 time as UTC without time zone (a time without zone is taken as UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AutograderError(
            f"--deadline {text!r} is not an ISO 8601 time; write e.g. 2026-12-14T23:59:00+01:00."
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_deadlines(
    items: list[str] | None, assignments: Iterable[str]
) -> tuple[datetime | None, dict[str, datetime]]:
    """``--deadline`` items: ``ISO8601`` (every assignment) or ``ASSIGNMENT=ISO8601`` (that one;
    it wins over the plain form); the plain deadline and the per-assignment ones."""
    plain, per_assignment = None, {}
    known = set(assignments)
    for item in items or []:
        assignment, equals, moment = item.rpartition("=")
        if not equals:
            if plain is not None:
                raise AutograderError(
                    "--deadline ISO8601 is given twice; give it once, and ASSIGNMENT=ISO8601 for "
                    "an assignment with its own deadline."
                )
            plain = parse_deadline(moment)
        elif assignment not in known:
            raise AutograderError(
                f"--deadline {item!r}: {assignment!r} is not an assignment; write one of "
                f"{', '.join(sorted(known))}, as in exercise_08=2026-12-14T23:59:00+01:00."
            )
        else:
            per_assignment[assignment] = parse_deadline(moment)
    return plain, per_assignment


def parse_counts(items: list[str] | None) -> dict[str, str]:
    """``ASSIGNMENT=best|last`` items as a dict."""
    found = {}
    for item in items or []:
        assignment, _, rule = item.partition("=")
        if rule not in COUNTS or not assignment:
            raise AutograderError(f"--counts {item!r}: write ASSIGNMENT=best or ASSIGNMENT=last.")
        found[assignment] = rule
    return found
