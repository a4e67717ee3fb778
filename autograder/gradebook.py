"""The trusted grader's side of nbgrader's gradebook, for :mod:`autograder.grade` and ``report``
(what each graded cell is worth: :func:`autograder.course.gradebook_cells`; the gradebook of a
throwaway course: :mod:`autograder.grading.throwaway`).

- :func:`store_scores`: the trusted per-cell scores (the hidden-accuracy cell included) into the
  real gradebook. No gradebook a sandbox could write is ever read.
- :func:`record_students`: the students of the grade table and the roster, with their names, so
  that ``nbgrader export`` and formgrader list every student (``report`` calls it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from . import course
from .course import Scores


def store_scores(course_dir: Path, assignment: str, scores: dict[str, Scores]) -> None:
    """Write trusted per-cell scores (``{student: {(notebook, cell): score}}``) into the real
    gradebook (nbgrader's Gradebook API), in one session for all of them.

    Each grade's ``auto_score`` is set (not added), so storing twice changes nothing. A
    submission's timestamp is the one of ``submitted/<student>/<assignment>/timestamp.txt``.
    """
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    if not scores:
        return
    db_url = f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
    with warnings.catch_warnings(), Gradebook(db_url, course.COURSE_ID) as gb:
        # nbgrader's update_or_create_submission triggers harmless SQLAlchemy autoflush warnings.
        warnings.simplefilter("ignore")
        for student, cells in scores.items():
            stamp = course.submitted_dir(course_dir, assignment, student) / "timestamp.txt"
            timestamp = parse_utc(stamp.read_text().strip()) if stamp.is_file() else None
            gb.update_or_create_student(student)
            # The submission's time as collect recorded it: formgrader counts a submission as
            # autograded only when the gradebook's time equals the submitted folder's.
            submission = gb.update_or_create_submission(assignment, student, timestamp=timestamp)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    key = (notebook.name, grade.name)
                    if key in cells:
                        grade.auto_score = cells[key]
                        grade.manual_score = None
                        grade.needs_manual_grade = False
        gb.db.commit()


def record_students(course_dir: Path, students: dict[str, dict[str, str]]) -> None:
    """Add ``students`` (``{student id: {"first_name", "last_name", "email"}}``) to the real
    gradebook, or update the names and emails given (empty values leave what is there); no
    gradebook, nothing to do.

    A student without a submission (a rejected upload, a roster student who handed in nothing)
    is then exported by nbgrader with 0 points, as the grade table and the LMS files have them.
    """
    from nbgrader.api import Gradebook

    db = Path(course_dir) / "gradebook.db"
    if not db.is_file() or not students:
        return
    course.ensure_tools_on_path()
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", course.COURSE_ID) as gb:
        warnings.simplefilter("ignore")
        for student_id, fields in sorted(students.items()):
            gb.update_or_create_student(student_id, **{k: v for k, v in fields.items() if v})
        gb.db.commit()


def split_name(full_name: str) -> dict[str, str]:
    """``first_name`` and ``last_name`` of a roster's full name: "Jane Doe" (the last word is
    the last name) or "Doe, Jane" (as Canvas sorts names)."""
    full_name = " ".join(full_name.split())
    if "," in full_name:
        last, first = (part.strip() for part in full_name.split(",", 1))
    else:
        first, _, last = full_name.rpartition(" ")
    return {"first_name": first, "last_name": last}
