"""The tables of the grader's database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Grading(Base):
    """One submission of one student to be graded by one version of the grader.

    ``state`` is a :class:`autograder.core.records.Status` value. ``record`` (the
    :class:`~autograder.core.records.GradeRecord` as a dict) is written once, when the state
    becomes final; ``holder`` and ``held_since`` say which worker took it up and when, ``tries``
    how often.
    """

    __tablename__ = "gradings"
    __table_args__ = (
        UniqueConstraint(
            "assignment", "student_id", "submission_sha256", "grader_version", name="one_grading"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment: Mapped[str] = mapped_column(String(64), index=True)
    student_id: Mapped[str] = mapped_column(String(64), index=True)
    submission_sha256: Mapped[str] = mapped_column(String(80))
    grader_version: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    held_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    record: Mapped[dict | None] = mapped_column(JSON, nullable=True)
