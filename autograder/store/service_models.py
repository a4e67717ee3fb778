"""The submission service's tables: accounts (token hashes), uploads, uploads per day.

The service's uploads point at rows of :class:`~autograder.store.models.Grading` (one grading
per distinct zip of a student): two uploads of the same bytes share one grading.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class Account(Base):
    """A student or an instructor of one assignment; only the hash of the token is kept.

    ``generation`` grows with each token issued: a session made with an older token is void.
    ``pseudonym`` is the name on the leaderboard; ``on_leaderboard`` the student's choice.
    """

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("assignment", "student_id", "role", name="one_account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment: Mapped[str] = mapped_column(String(64))
    student_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    pseudonym: Mapped[str] = mapped_column(String(64))
    on_leaderboard: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class Upload(Base):
    """One accepted upload: its zip (content-addressed file name), its grading row."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    assignment: Mapped[str] = mapped_column(String(64), index=True)
    student_id: Mapped[str] = mapped_column(String(64), index=True)
    grading_id: Mapped[int] = mapped_column(ForeignKey("gradings.id"), index=True)
    zip_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(DateTime, index=True)


class UploadDay(Base):
    """How many uploads a student made for an assignment on one (UTC) day."""

    __tablename__ = "upload_days"

    assignment: Mapped[str] = mapped_column(String(64), primary_key=True)
    student_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
