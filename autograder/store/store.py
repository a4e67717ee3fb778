"""The one facade of the grader's database: :class:`Store`.

Every grading row is keyed by (assignment, student, submission sha256, grader version) and
moves ``queued`` -> ``running`` -> a final state (:class:`Status`), whose record is written
once: :meth:`Store.finish` changes nothing when the row is final already, so a rerun, a retried
task or two graders on one course never count a submission twice. A row left ``running`` by a
grader or worker that died is simply taken up again by the next :meth:`Store.claim`
(:meth:`Store.unfinished` lists it, with its holder and since when).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..core.records import Status
from ..core.text import is_student_id
from .models import Grading

DATABASE_FILE = "grading.sqlite"
DATABASE_VARIABLE = "AUTOGRADER_DATABASE"
"""A SQLAlchemy URL that replaces every course's SQLite file (``--database`` sets it)."""
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COLLECT_VERSION = "collect"
"""The grader version of a row that ``collect`` wrote (a rejected upload: nothing to grade)."""
LEGACY_VERSION = "legacy-json"
"""The grader version of a record imported from ``course/results/*.json`` (graded again by the
next ``grade``: its key cannot be compared with today's)."""


def default_url(course_dir: Path) -> str:
    """``sqlite:///<course_dir>/grading.sqlite``."""
    return f"sqlite:///{Path(course_dir).resolve() / DATABASE_FILE}"


def now() -> datetime:
    """The current time in UTC, without a time zone (how every row stores it)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class GradingRow:
    """A row of :class:`~autograder.store.models.Grading`, detached from its session."""

    id: int
    assignment: str
    student_id: str
    submission_sha256: str
    grader_version: str
    state: Status
    reason: str
    tries: int
    holder: str | None
    held_since: datetime | None
    created: datetime
    finished: datetime | None
    record: dict | None

    @classmethod
    def of(cls, row: Grading) -> GradingRow:
        return cls(
            row.id,
            row.assignment,
            row.student_id,
            row.submission_sha256,
            row.grader_version,
            Status(row.state),
            row.reason or "",
            row.tries,
            row.holder,
            row.held_since,
            row.created,
            row.finished,
            row.record,
        )


_ENGINES: dict[str, Engine] = {}
_MIGRATED: set[str] = set()
"""URLs whose schema this process brought up to date (every per-student read of ``results``
opens a store: the migration check runs once per database and process, not per call)."""
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> Engine:
    """One engine per URL and process (SQLite: WAL mode, a generous busy timeout)."""
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            sqlite = url.startswith("sqlite")
            engine = create_engine(
                url,
                connect_args={"timeout": 60} if sqlite else {},
                pool_pre_ping=not sqlite,
            )
            if sqlite:
                event.listen(engine, "connect", _sqlite_pragmas)
            _ENGINES[url] = engine
        return _ENGINES[url]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


class Store:
    """The grader's database at ``url`` (any SQLAlchemy URL), its schema brought up to date."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if url not in _MIGRATED or not self._file_present():
            self._migrate()
            _MIGRATED.add(url)

    @property
    def where(self) -> str:
        """Where the database is, to show a person: a file's path, or the URL without its
        password."""
        if self.url.startswith("sqlite:///"):
            return self.url.removeprefix("sqlite:///")
        return make_url(self.url).render_as_string(hide_password=True)

    @classmethod
    def for_course(cls, course_dir: Path, url: str | None = None) -> Store:
        """The store of ``course_dir``: ``url``, else ``AUTOGRADER_DATABASE``, else its SQLite
        file; ``course/results`` JSON records of an earlier version are imported once, then
        removed."""
        store = cls(url or os.environ.get(DATABASE_VARIABLE) or default_url(course_dir))
        store.import_json_results(Path(course_dir))
        return store

    # ----------------------------------------------------------------------------- schema

    def _file_present(self) -> bool:
        """A SQLite database's file still exists (a deleted one is made and migrated again)."""
        if not self.url.startswith("sqlite:///"):
            return True
        return Path(self.url.removeprefix("sqlite:///")).exists()

    def _migrate(self) -> None:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        for attempt in range(3):
            with self.engine.connect() as connection:
                if MigrationContext.configure(connection).get_current_revision() == head:
                    return
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            try:
                with self.engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(80808)")
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                return
            except (OperationalError, IntegrityError):
                if attempt == 2:  # another process was creating the same tables: look again
                    raise

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # ----------------------------------------------------------------------------- grading

    def enqueue(
        self,
        assignment: str,
        student_id: str,
        submission_sha256: str,
        grader_version: str,
        force: bool = False,
    ) -> GradingRow:
        """The row of this key, made ``queued`` if it is new (or, with ``force``, made queued
        again even when final: its record is forgotten)."""
        key = (assignment, student_id, submission_sha256, grader_version)
        with self._sessions() as session:
            row = self._find(session, *key)
            if row is None:
                row = Grading(
                    assignment=assignment,
                    student_id=student_id,
                    submission_sha256=submission_sha256,
                    grader_version=grader_version,
                    state=Status.QUEUED.value,
                    reason="",
                    tries=0,
                    created=now(),
                )
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # made by another process at the same moment
                    session.rollback()
                    row = self._find(session, *key)
            elif force and Status(row.state).final:
                row.state, row.record, row.finished = Status.QUEUED.value, None, None
                row.reason, row.tries, row.holder, row.held_since = "", 0, None, None
                session.commit()
            return GradingRow.of(row)

    def claim(self, row_id: int, holder: str) -> GradingRow | None:
        """Take row ``row_id`` up (``running``, one more try, ``holder`` since now); None when
        it is final already (graded by someone else) or gone."""
        taken = self._update_unfinished(
            row_id,
            state=Status.RUNNING.value,
            tries=Grading.tries + 1,
            holder=holder[:200],
            held_since=now(),
        )
        return self.get(row_id) if taken else None

    def finish(self, row_id: int, record: dict) -> bool:
        """Write ``record`` (a GradeRecord's dict) and its final state, once: False when the row
        was final already (nothing changed)."""
        state = Status(record["status"])
        if not state.final:
            raise ValueError(f"a record's state must be final, not {state}")
        text = json.loads(json.dumps(record, allow_nan=False))
        return self._update_unfinished(
            row_id,
            state=state.value,
            record=text,
            reason=str(record.get("message") or "")[:2000],
            finished=now(),
        )

    def _update_unfinished(self, row_id: int, **values: object) -> bool:
        """Set ``values`` on row ``row_id`` if it is still queued or running (one statement, so
        two writers never both succeed); whether it was."""
        with self._sessions() as session:
            done = session.execute(
                update(Grading)
                .where(Grading.id == row_id)
                .where(Grading.state.in_([Status.QUEUED.value, Status.RUNNING.value]))
                .values(**values)
            )
            session.commit()
            return done.rowcount == 1

    def requeue(self, row_id: int) -> None:
        """A retryable record (a failure of the grader itself) makes its row queued again."""
        with self._sessions() as session:
            session.execute(
                update(Grading)
                .where(Grading.id == row_id)
                .values(state=Status.QUEUED.value, holder=None, held_since=None)
            )
            session.commit()

    def get(self, row_id: int) -> GradingRow | None:
        with self._sessions() as session:
            row = session.get(Grading, row_id)
            return GradingRow.of(row) if row is not None else None

    def rows(self, assignment: str | None = None) -> list[GradingRow]:
        """Every row (of ``assignment``), oldest first."""
        with self._sessions() as session:
            query = select(Grading).order_by(Grading.id)
            if assignment is not None:
                query = query.where(Grading.assignment == assignment)
            return [GradingRow.of(row) for row in session.scalars(query)]

    def unfinished(self, assignment: str) -> list[GradingRow]:
        """Rows still ``queued`` or ``running`` (a running one whose holder died included)."""
        return [row for row in self.rows(assignment) if not row.state.final]

    # ----------------------------------------------------------------------------- records

    def current(self, assignment: str) -> dict[str, GradingRow]:
        """Each student's newest row with a final record among the collected submissions (what
        ``collect`` and ``grade`` made; the service's uploads count by its own rule)."""
        from .service_models import Upload

        with self._sessions() as session:
            uploaded = set(session.scalars(select(Upload.grading_id)))
        found: dict[str, GradingRow] = {}
        for row in self.rows(assignment):
            if row.state.final and row.record is not None and row.id not in uploaded:
                found[row.student_id] = row
        return found

    def write_record(self, assignment: str, student_id: str, record: dict) -> GradingRow:
        """Store ``record`` as the newest final row of ``student_id`` (``collect``'s rejected
        uploads; rows of no submission to grade)."""
        digest = _record_key(record)
        row = self.enqueue(assignment, student_id, digest, COLLECT_VERSION, force=True)
        self.finish(row.id, record)
        with self._sessions() as session:  # the newest row: after any older grading of it
            newest = session.scalars(
                select(Grading.id)
                .where(Grading.assignment == assignment, Grading.student_id == student_id)
                .order_by(Grading.id.desc())
                .limit(1)
            ).first()
        if newest != row.id:
            self.forget(assignment, student_id, keep=row.id)
        return self.get(row.id)

    def forget(self, assignment: str, student_id: str, keep: int | None = None) -> None:
        """Delete every row of ``student_id`` for ``assignment`` (but ``keep``)."""
        with self._sessions() as session:
            query = delete(Grading).where(
                Grading.assignment == assignment, Grading.student_id == student_id
            )
            if keep is not None:
                query = query.where(Grading.id != keep)
            session.execute(query)
            session.commit()

    def import_json_results(self, course_dir: Path) -> int:
        """Import ``course_dir/results/<assignment>/<student>.json`` (the record files of an
        earlier version) as final rows, then delete them; returns how many were imported."""
        folder = Path(course_dir) / "results"
        if not folder.is_dir() or folder.is_symlink():
            return 0
        count = 0
        for path in sorted(folder.glob("*/*.json")):
            assignment, student = path.parent.name, path.stem
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None
            if is_student_id(student) and isinstance(record, dict) and record.get("status"):
                record["student_id"] = student
                digest = str(record.get("submission_sha256") or _record_key(record))
                row = self.enqueue(assignment, student, digest, LEGACY_VERSION)
                self.finish(row.id, record)
                count += 1
            path.unlink()
        for sub in sorted(folder.glob("*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()
        return count

    @staticmethod
    def _find(
        session: Session, assignment: str, student: str, digest: str, version: str
    ) -> Grading | None:
        return session.scalars(
            select(Grading).where(
                Grading.assignment == assignment,
                Grading.student_id == student,
                Grading.submission_sha256 == digest,
                Grading.grader_version == version,
            )
        ).first()


def _record_key(record: dict) -> str:
    """A key for a record that has no submission to hash (a rejected upload)."""
    import hashlib

    text = json.dumps(record, sort_keys=True, default=str) + os.urandom(8).hex()
    return "record:" + hashlib.sha256(text.encode()).hexdigest()[:56]
