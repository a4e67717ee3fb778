"""Uploads to the submission service, each linked to its grading row, and the daily cap.

An upload is accepted in one transaction with the day's counter (:meth:`Uploads.add`): the
counter is raised only while it is under the cap, so restarts and several web processes never
let a student past it. Uploads of the same bytes by one student share one grading row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from ..core.records import Status
from .models import Grading
from .service_models import Upload, UploadDay
from .store import GradingRow, Store, now


@dataclass(frozen=True)
class UploadView:
    """An upload and its grading row."""

    id: str
    assignment: str
    student_id: str
    zip_sha256: str
    size: int
    file_name: str
    created: datetime
    grading: GradingRow


def _view(upload: Upload, grading: Grading) -> UploadView:
    return UploadView(
        upload.id,
        upload.assignment,
        upload.student_id,
        upload.zip_sha256,
        upload.size,
        upload.file_name,
        upload.created,
        GradingRow.of(grading),
    )


class Uploads:
    """The uploads of the store's database."""

    def __init__(self, store: Store) -> None:
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)

    def used(self, assignment: str, student_id: str, day: str) -> int:
        """Uploads of ``student_id`` for ``assignment`` on ``day`` (``YYYY-MM-DD``, UTC)."""
        with self._sessions() as session:
            row = session.get(UploadDay, (assignment, student_id, day))
            return row.count if row is not None else 0

    def add(
        self,
        assignment: str,
        student_id: str,
        grading_id: int,
        zip_sha256: str,
        size: int,
        file_name: str,
        day: str,
        cap: int,
    ) -> UploadView | None:
        """Record an accepted upload and count it for ``day``; None (nothing written) when the
        student has made ``cap`` uploads that day already."""
        key = (assignment, student_id, day)
        with self._sessions() as session:
            if session.get(UploadDay, key) is None:
                try:
                    with session.begin_nested():
                        session.add(
                            UploadDay(
                                assignment=assignment, student_id=student_id, day=day, count=0
                            )
                        )
                except IntegrityError:  # made by a concurrent upload
                    pass
            counted = session.execute(
                update(UploadDay)
                .where(
                    UploadDay.assignment == assignment,
                    UploadDay.student_id == student_id,
                    UploadDay.day == day,
                    UploadDay.count < cap,
                )
                .values(count=UploadDay.count + 1)
            )
            if counted.rowcount != 1:
                session.rollback()
                return None
            upload = Upload(
                id=secrets.token_hex(8),
                assignment=assignment,
                student_id=student_id,
                grading_id=grading_id,
                zip_sha256=zip_sha256,
                size=size,
                file_name=file_name[:200],
                created=now(),
            )
            session.add(upload)
            session.commit()
            return _view(upload, session.get(Grading, grading_id))

    def get(self, upload_id: str) -> UploadView | None:
        with self._sessions() as session:
            found = session.execute(
                select(Upload, Grading)
                .join(Grading, Upload.grading_id == Grading.id)
                .where(Upload.id == str(upload_id)[:32])
            ).first()
            return _view(*found) if found else None

    def of_student(self, student_id: str, assignment: str | None = None) -> list[UploadView]:
        """The student's uploads, newest first."""
        query = (
            select(Upload, Grading)
            .join(Grading, Upload.grading_id == Grading.id)
            .where(Upload.student_id == student_id)
        )
        if assignment is not None:
            query = query.where(Upload.assignment == assignment)
        with self._sessions() as session:
            rows = session.execute(query.order_by(Upload.created.desc(), Upload.id.desc()))
            return [_view(*row) for row in rows]

    def all(self, assignment: str | None = None) -> list[UploadView]:
        """Every upload (of ``assignment``), oldest first."""
        query = select(Upload, Grading).join(Grading, Upload.grading_id == Grading.id)
        if assignment is not None:
            query = query.where(Upload.assignment == assignment)
        with self._sessions() as session:
            rows = session.execute(query.order_by(Upload.created, Upload.id))
            return [_view(*row) for row in rows]

    def unfinished(self) -> list[UploadView]:
        """The first upload of each grading row that is still queued or running, oldest first
        (a running row whose grader died included)."""
        query = (
            select(Upload, Grading)
            .join(Grading, Upload.grading_id == Grading.id)
            .where(Grading.state.in_([Status.QUEUED.value, Status.RUNNING.value]))
            .order_by(Upload.created, Upload.id)
        )
        found: dict[int, UploadView] = {}
        with self._sessions() as session:
            for row in session.execute(query):
                view = _view(*row)
                found.setdefault(view.grading.id, view)
        return list(found.values())
