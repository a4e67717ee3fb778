"""Uploads to the submission service, each linked to its grading row, and the daily cap.

An upload is accepted in one transaction (:meth:`Uploads.add`): the day's counter is raised
only while it is under the cap, the grading row is found or made, and the upload is written,
or nothing is: a refused upload leaves no row, and restarts or several web processes never
let a student past the cap. Uploads of the same bytes by one student share one grading row.

Reads select plain columns (no ORM objects): the status route runs them on every poll.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..core.records import Status
from .models import Grading
from .service_models import Upload, UploadDay
from .store import GradingRow, Store, now

UNFINISHED = (Status.QUEUED.value, Status.RUNNING.value)
_UPLOAD_COLUMNS = (
    Upload.id,
    Upload.assignment,
    Upload.student_id,
    Upload.zip_sha256,
    Upload.size,
    Upload.file_name,
    Upload.created,
)
_GRADING_COLUMNS = (
    Grading.id,
    Grading.assignment,
    Grading.student_id,
    Grading.submission_sha256,
    Grading.grader_version,
    Grading.state,
    Grading.reason,
    Grading.tries,
    Grading.holder,
    Grading.held_since,
    Grading.created,
    Grading.finished,
    Grading.record,
)
"""In :class:`GradingRow`'s order."""


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

    @property
    def queued(self) -> Queued:
        return Queued(self.grading.id, self.assignment, self.student_id, self.grading.state)


@dataclass(frozen=True)
class Queued:
    """A grading row of an upload that is still queued or running: what the queue's order
    needs (the engine's priorities, the positions the API shows)."""

    grading_id: int
    assignment: str
    student_id: str
    state: Status


def _day_count(assignment: str, student_id: str, day: str):
    return select(UploadDay.count).where(
        UploadDay.assignment == assignment,
        UploadDay.student_id == student_id,
        UploadDay.day == day,
    )


def _grading_id(
    connection, assignment: str, student_id: str, zip_sha256: str, grader_version: str
) -> int:
    """The id of the grading row of this key, made ``queued`` (in ``connection``'s
    transaction) if there is none."""
    found = connection.scalar(
        select(Grading.id).where(
            Grading.assignment == assignment,
            Grading.student_id == student_id,
            Grading.submission_sha256 == zip_sha256,
            Grading.grader_version == grader_version,
        )
    )
    if found is not None:
        return found
    return connection.execute(
        insert(Grading).values(
            assignment=assignment,
            student_id=student_id,
            submission_sha256=zip_sha256,
            grader_version=grader_version,
            state=Status.QUEUED.value,
            reason="",
            tries=0,
            created=now(),
        )
    ).inserted_primary_key[0]


def _views_query():
    return select(*_UPLOAD_COLUMNS, *_GRADING_COLUMNS).join(
        Grading, Upload.grading_id == Grading.id
    )


def _view(row) -> UploadView:
    upload, grading = row[: len(_UPLOAD_COLUMNS)], row[len(_UPLOAD_COLUMNS) :]
    state, reason = Status(grading[5]), grading[6] or ""
    return UploadView(*upload, GradingRow(*grading[:5], state, reason, *grading[7:]))


class Uploads:
    """The uploads of the store's database."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def _views(self, query) -> list[UploadView]:
        with self._engine.connect() as connection:
            return [_view(row) for row in connection.execute(query)]

    def used(self, assignment: str, student_id: str, day: str) -> int:
        """Uploads of ``student_id`` for ``assignment`` on ``day`` (``YYYY-MM-DD``, UTC)."""
        with self._engine.connect() as connection:
            count = connection.scalar(_day_count(assignment, student_id, day))
        return count or 0

    def add(
        self,
        assignment: str,
        student_id: str,
        zip_sha256: str,
        grader_version: str,
        size: int,
        file_name: str,
        day: str,
        cap: int,
    ) -> UploadView | None:
        """Record an accepted upload, its grading row (made ``queued`` unless this student's
        same bytes have one) and its count for ``day``, in one transaction; None, with nothing
        written, when the student has made ``cap`` uploads that day already."""
        self._day_row(assignment, student_id, day)
        key = (assignment, student_id, zip_sha256, grader_version)
        for attempt in range(3):
            try:
                with self._engine.connect() as connection:
                    # The counter's update comes first: it takes the write lock (SQLite) or the
                    # row's lock (PostgreSQL), so one student's uploads pass one at a time.
                    counted = connection.execute(
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
                        connection.rollback()
                        return None
                    upload_id = secrets.token_hex(8)
                    connection.execute(
                        insert(Upload).values(
                            id=upload_id,
                            assignment=assignment,
                            student_id=student_id,
                            grading_id=_grading_id(connection, *key),
                            zip_sha256=zip_sha256,
                            size=size,
                            file_name=file_name[:200],
                            created=now(),
                        )
                    )
                    query = _views_query().where(Upload.id == upload_id)
                    view = _view(connection.execute(query).one())
                    connection.commit()
                    return view
            except IntegrityError:  # the grading row was made by another process meanwhile
                if attempt == 2:
                    raise
        return None

    def _day_row(self, assignment: str, student_id: str, day: str) -> None:
        """The day's counter at 0 unless it exists (a row of its own: it counts nothing)."""
        with self._engine.connect() as connection:
            if connection.scalar(_day_count(assignment, student_id, day)) is not None:
                return
            try:
                connection.execute(
                    insert(UploadDay).values(
                        assignment=assignment, student_id=student_id, day=day, count=0
                    )
                )
                connection.commit()
            except IntegrityError:  # made by a concurrent upload
                connection.rollback()

    def regrade(self, grading_id: int, grader_version: str) -> None:
        """Point the uploads of the unfinished row ``grading_id`` at the row of the same bytes
        for ``grader_version`` (made ``queued`` if new) and delete the old row, in one
        transaction: an upload that waited while the grader changed is graded by the new one
        instead of waiting for ever. Nothing happens once the old row is final."""
        with self._engine.connect() as connection:
            old = connection.execute(
                select(Grading.assignment, Grading.student_id, Grading.submission_sha256).where(
                    Grading.id == grading_id, Grading.state.in_(UNFINISHED)
                )
            ).first()
            if old is None:
                return
            new_id = _grading_id(connection, *old, grader_version)
            connection.execute(
                update(Upload).where(Upload.grading_id == grading_id).values(grading_id=new_id)
            )
            connection.execute(
                delete(Grading).where(Grading.id == grading_id, Grading.state.in_(UNFINISHED))
            )
            connection.commit()

    def get(self, upload_id: str) -> UploadView | None:
        found = self._views(_views_query().where(Upload.id == str(upload_id)[:32]))
        return found[0] if found else None

    def of_student(self, student_id: str, assignment: str | None = None) -> list[UploadView]:
        """The student's uploads, newest first."""
        query = _views_query().where(Upload.student_id == student_id)
        if assignment is not None:
            query = query.where(Upload.assignment == assignment)
        return self._views(query.order_by(Upload.created.desc(), Upload.id.desc()))

    def all(self, assignment: str | None = None) -> list[UploadView]:
        """Every upload (of ``assignment``), oldest first."""
        query = _views_query()
        if assignment is not None:
            query = query.where(Upload.assignment == assignment)
        return self._views(query.order_by(Upload.created, Upload.id))

    def unfinished(self) -> list[UploadView]:
        """The first upload of each grading row that is still queued or running, oldest first
        (a running row whose grader died included)."""
        query = _views_query().where(Grading.state.in_(UNFINISHED))
        found: dict[int, UploadView] = {}
        for view in self._views(query.order_by(Upload.created, Upload.id)):
            found.setdefault(view.grading.id, view)
        return list(found.values())

    def queue(self) -> list[Queued]:
        """Every grading row of an upload that is still queued or running, by row id."""
        query = (
            select(Grading.id, Grading.assignment, Grading.student_id, Grading.state)
            .where(Grading.state.in_(UNFINISHED))
            .where(exists().where(Upload.grading_id == Grading.id))
            .order_by(Grading.id)
        )
        with self._engine.connect() as connection:
            return [
                Queued(row_id, assignment, student, Status(state))
                for row_id, assignment, student, state in connection.execute(query)
            ]
