"""``grade``: every collected submission of an assignment graded by the engine, from data.

The store (:mod:`autograder.store`, ``course/grading.sqlite`` by default) gets one row per
(assignment, student, submission sha256, grader version); rows that have no final record yet
are handed to the engine (:mod:`autograder.engine`: an embedded Dask ``LocalCluster`` of
``jobs`` worker processes, or the cluster of ``scheduler``), which grades each submission with
:func:`autograder.grading.grade_submission` and writes its record once. The real gradebook is
then written from the store. An unchanged submission is never graded again (``force`` regrades
chosen students); an interrupted run resumes where it stopped.

Entry point: :func:`grade`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import course
from .core.errors import AutograderError
from .core.records import GradeRecord
from .core.settings import GradeSettings
from .core.text import clean_text, is_student_id
from .engine import BatchLost, Finished, grading_client, grading_spec, run_batch
from .gradebook import store_scores
from .grading import submission_sha256
from .grading.workspace import remove_stale_runs, restrict
from .sandbox import MAX_SLOTS, isolation_warning
from .store import GradingRow, Store
from .store.store import DATABASE_FILE

__all__ = ["GradeSettings", "grade"]


def grade(
    course_dir: Path,
    assignment: str,
    students: list[str] | None = None,
    jobs: int = 1,
    settings: GradeSettings | None = None,
    *,
    scheduler: str | None = None,
    database: str | None = None,
    force: bool = False,
    dashboard: bool = False,
) -> None:
    """Grade the collected submissions of ``assignment`` (all, or only ``students``).

    ``jobs`` worker processes grade in parallel on this machine, or the workers of the Dask
    ``scheduler`` (``tcp://HOST:PORT``); ``database`` is a SQLAlchemy URL (default: the
    course's ``grading.sqlite``); ``force`` grades ``students`` (or everyone) again. Prints one
    line per submission and a summary. Raises ``AutograderError`` when the course is not ready
    (no release, no hidden test data) or the scheduler cannot be reached.
    """
    settings = settings or GradeSettings.from_env()
    course_dir = course.require_course(course_dir)
    course.exercise_dir(assignment)
    if not 1 <= jobs <= MAX_SLOTS:
        raise AutograderError(f"--jobs must be between 1 and {MAX_SLOTS}; got {jobs}.")
    warning = isolation_warning()
    if warning:
        print(warning)
    with course.course_lock(course_dir, "run grade"):
        todo = _students_to_grade(course_dir, assignment, students)
        if not todo:
            print(f"No collected submissions of {assignment} to grade; run collect first.")
            return
        specs: list = []

        def prepare() -> list:  # while the workers start
            specs.append(grading_spec(course_dir, assignment, settings))
            return specs

        with grading_client(
            scheduler, jobs, settings, dashboard, prepare, share_warm_parent=True
        ) as client:
            (spec,) = specs
            restrict(course_dir, settings.data_dir)
            store = Store.for_course(course_dir, database)
            rows = _rows_to_grade(store, spec.grader_version, course_dir, assignment, todo, force)
            pending = [row for row in rows if not row.state.final]
            progress = _Progress(assignment, len(rows), len(rows) - len(pending))
            try:
                run_batch(client, spec, store, pending, progress.finished)
            except BatchLost:
                where = scheduler or "the embedded cluster"
                raise AutograderError(
                    f"lost the Dask scheduler at {where} after {progress.done} of "
                    f"{len(rows)} submissions of {assignment} (each graded one is kept): start "
                    "it again and run grade again to finish the batch."
                ) from None
        # A worker the cluster stopped before it cleaned up (a busy machine) leaves its work
        # folder; the workers are gone now, so whatever is left is stale.
        remove_stale_runs()
        _sync_gradebook(store, course_dir, assignment, todo)
        hand_back(course_dir)
        progress.summary(course_dir, store)


def hand_back(course_dir: Path) -> None:
    """As root in a course folder of another user: what grading wrote there (the database, the
    gradebook, the feedback notebooks) becomes that user's again, so that ``report`` and
    ``collect`` run as the instructor's own user afterwards. Links are never followed."""
    owner = course_dir.stat()
    if os.geteuid() != 0 or owner.st_uid == 0:
        return
    written = [course_dir / name for name in ("gradebook.db", ".grade.lock")]
    written += list(course_dir.glob(f"{DATABASE_FILE}*"))
    autograded = course_dir / "autograded"
    if autograded.is_dir() and not autograded.is_symlink():
        written += [autograded, *autograded.rglob("*")]
    for path in written:
        if path.exists() and not path.is_symlink():
            os.lchown(path, owner.st_uid, owner.st_gid)


def _students_to_grade(course_dir: Path, assignment: str, students: list[str] | None) -> list[str]:
    collected = course.submitted_students(course_dir, assignment)
    if students is None:
        return collected
    for student in students:
        if not is_student_id(student):
            raise AutograderError(
                f"{clean_text(student)!r} is not a usable student id: give the id of a collected "
                "submission (letters, digits, '.', '_' and '-')."
            )
        if student not in collected:
            rejected = _rejected_message(course_dir, assignment, student)
            print(
                f"{student}: the upload was rejected at collect ({rejected.rstrip('.')}); "
                "collect a corrected zip, then grade again."
                if rejected
                else f"{student}: no collected submission of {assignment}; run collect first."
            )
    return [s for s in students if s in collected]


def _rejected_message(course_dir: Path, assignment: str, student: str) -> str:
    """The sentence of ``student``'s rejected upload, or "" when it was not rejected."""
    from .results import read_result

    record = read_result(course_dir, assignment, student) or {}
    return clean_text(record.get("message")) if record.get("status") == "rejected" else ""


def _rows_to_grade(
    store: Store,
    version: str,
    course_dir: Path,
    assignment: str,
    students: list[str],
    force: bool,
) -> list[GradingRow]:
    """The store's row of each student's current submission; a retryable error (a failure of
    the grader itself) is queued again, and with ``force`` every final one."""
    rows = []
    for student in students:
        digest = submission_sha256(course_dir, assignment, student)
        row = store.enqueue(assignment, student, digest, version, force=force)
        if row.state.final and (row.record or {}).get("retryable"):
            row = store.enqueue(assignment, student, digest, version, force=True)
        rows.append(row)
    return rows


def _sync_gradebook(store: Store, course_dir: Path, assignment: str, students: list[str]) -> None:
    """The trusted scores of each student's current record into the real gradebook."""
    current = store.current(assignment)
    scores = {}
    for student in students:
        row = current.get(student)
        if row is not None and row.grader_version != "collect":
            record = GradeRecord.from_dict(row.record)
            scores[student] = {tuple(p.item.split(": ", 1)): p.score for p in record.details}
    store_scores(course_dir, assignment, scores)


class _Progress:
    """One line per finished submission, with the count, the rate and the time left."""

    def __init__(self, assignment: str, total: int, already: int) -> None:
        self.assignment, self.total, self.already = assignment, total, already
        self.done = already
        self.started = time.monotonic()
        if already:
            print(
                f"{already} of {total} submissions of {assignment} are already graded; "
                f"grading the other {total - already}.",
                flush=True,
            )

    def finished(self, item: Finished) -> None:
        self.done += 1
        if item.leftovers:
            print(
                f"Warning: {item.leftovers} processes of an earlier job were still running on "
                f"{item.holder} before {item.row.student_id}'s job; they were killed first.",
                flush=True,
            )
        record = item.record
        elapsed = time.monotonic() - self.started
        graded_now = self.done - self.already
        left = self.total - self.done
        rate = graded_now / elapsed * 60 if elapsed > 0 else 0.0
        eta = f", about {left / rate:.0f} min left" if left and rate > 0 else ""
        total = record.get("total") or 0.0
        total_max = record.get("total_max") or 0.0
        print(
            f"[{self.done}/{self.total}] {item.row.student_id}: {record.get('status')} "
            f"{total:g}/{total_max:g} in {item.seconds:.1f} s "
            f"({rate:.1f}/min{eta}). {clean_text(record.get('message'))}".rstrip(),
            flush=True,
        )

    def summary(self, course_dir: Path, store: Store) -> None:
        graded = self.done - self.already
        print(
            f"Graded {graded} and skipped {self.already} already graded submissions of "
            f"{self.assignment} in {time.monotonic() - self.started:.1f} s "
            f"(records in {store.where})."
        )
