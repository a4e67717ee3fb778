"""What the service was given: :class:`ServiceConfig`."""

from __future__ import annotations

from collections.abc import Mapping
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

    ``deadline``: a UTC time without time zone (None: no deadline); ``counts``: per assignment,
    which upload counts, ``best`` (the default) or ``last``; ``behind_https``: the service sits
    behind a TLS proxy (its cookies get ``Secure``); ``job_timeout_s``: a grading still running
    after this long is stopped and ends ``error`` (default: the grader's own limits plus room).
    """

    course_dir: Path
    database: str | None = None
    scheduler: str | None = None
    jobs: int = 1
    deadline: datetime | None = None
    max_upload_bytes: int = 20 * MiB
    daily_cap: int = 5
    counts: Mapping[str, str] = field(default_factory=dict)
    behind_https: bool = False
    settings: GradeSettings = field(default_factory=GradeSettings.from_env)
    job_timeout_s: float | None = None

    def counting(self, assignment: str) -> str:
        return self.counts.get(assignment, "best")

    def deadline_passed(self, at: datetime | None = None) -> bool:
        moment = at or datetime.now(UTC).replace(tzinfo=None)
        return self.deadline is not None and moment >= self.deadline

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


def parse_counts(items: list[str] | None) -> dict[str, str]:
    """``ASSIGNMENT=best|last`` items as a dict."""
    found = {}
    for item in items or []:
        assignment, _, rule = item.partition("=")
        if rule not in COUNTS or not assignment:
            raise AutograderError(f"--counts {item!r}: write ASSIGNMENT=best or ASSIGNMENT=last.")
        found[assignment] = rule
    return found
