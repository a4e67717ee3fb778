"""The trusted grader's side of nbgrader's gradebook, for :mod:`autograder.grade`.

- :func:`gradebook_cells`: what each graded cell of an assignment is worth (the real gradebook,
  filled by ``release``).
- :func:`make_template_gradebook`: a gradebook for throwaway courses, holding the assignment's
  notebooks and cells but no student and no other assignment.
- :func:`store_scores`: the trusted per-cell scores (the hidden-accuracy cell included) into the
  real gradebook. No gradebook a sandbox could write is ever read.
- :func:`record_students`: the students of the grade table and the roster, with their names, so
  that ``nbgrader export`` and formgrader list every student (``report`` calls it).
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

from . import course
from .course import AutograderError
from .feedback import strip_hidden_tests

Scores = dict[tuple[str, str], float]
"""(notebook name, graded cell name) -> points."""


def gradebook_cells(course_dir: Path, assignment: str) -> Scores:
    """The points of every graded cell of ``assignment`` in ``course_dir/gradebook.db``.

    Raises ``AutograderError`` when the assignment has not been released into the gradebook.
    """
    from nbgrader.api import Gradebook, MissingEntry

    db = course_dir / "gradebook.db"
    message = f"{assignment} is not in {db}: run `python -m autograder release {assignment}` first."
    if not db.is_file():
        raise AutograderError(message)
    with Gradebook(f"sqlite:///{db}", course.COURSE_ID) as gb:
        try:
            found = gb.find_assignment(assignment)
        except MissingEntry:
            raise AutograderError(message) from None
        cells = {
            (notebook.name, cell.name): float(cell.max_score)
            for notebook in found.notebooks
            for cell in notebook.grade_cells
        }
    if not cells:
        raise AutograderError(message)
    return cells


def make_template_gradebook(real_db: Path, template: Path, assignment: str) -> None:
    """A copy of the real gradebook with only ``assignment``, no students and no hidden tests.

    nbgrader's autograde restores locked cells from this gradebook; without the hidden-test
    regions in it, no hidden test ever reaches the sandbox that runs the student's notebook
    (the trusted checks decide the points; the notebook runs for the feedback only).
    """
    from nbgrader.api import Gradebook

    source = sqlite3.connect(f"file:{real_db}?mode=ro", uri=True)
    target = sqlite3.connect(template)
    with target:
        source.backup(target)
    source.close()
    target.close()
    with Gradebook(f"sqlite:///{template}", course.COURSE_ID) as gb:
        for student in list(gb.students):
            gb.remove_student(student.id)
        for other in list(gb.assignments):
            if other.name != assignment:
                gb.remove_assignment(other.name)
        gb.db.commit()
    _strip_hidden_tests(template, assignment)
    connection = sqlite3.connect(template)
    connection.execute("VACUUM")
    connection.close()


def _strip_hidden_tests(db: Path, assignment: str) -> None:
    """Remove the hidden-test regions from the locked cells' stored source, with checksums that
    match (nbgrader restores locked cells from these and checks their checksums)."""
    from nbformat.v4 import new_code_cell
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum

    with Gradebook(f"sqlite:///{db}", course.COURSE_ID) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:
            points = {cell.name: cell.max_score for cell in notebook.grade_cells}
            solutions = {cell.name for cell in notebook.solution_cells}
            for cell in notebook.source_cells:
                stripped = strip_hidden_tests(cell.source or "")
                if stripped == cell.source:
                    continue
                meta = {"grade": cell.name in points, "solution": cell.name in solutions}
                meta.update(locked=cell.locked, grade_id=cell.name, points=points.get(cell.name, 0))
                rebuilt = new_code_cell(stripped, metadata={"nbgrader": meta})
                rebuilt.cell_type = cell.cell_type
                cell.source, cell.checksum = stripped, compute_checksum(rebuilt)
        gb.db.commit()


def store_scores(course_dir: Path, assignment: str, student: str, scores: Scores) -> None:
    """Write trusted per-cell scores into the real gradebook (nbgrader's Gradebook API).

    Each grade's ``auto_score`` is set (not added), so storing twice changes nothing. The
    submission's timestamp is the one of ``submitted/<student>/<assignment>/timestamp.txt``.
    """
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    db_url = f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
    stamp = course.submitted_dir(course_dir, assignment, student) / "timestamp.txt"
    timestamp = parse_utc(stamp.read_text().strip()) if stamp.is_file() else None
    with warnings.catch_warnings(), Gradebook(db_url, course.COURSE_ID) as gb:
        # nbgrader's update_or_create_submission triggers harmless SQLAlchemy autoflush warnings.
        warnings.simplefilter("ignore")
        gb.update_or_create_student(student)
        # The submission's time as collect recorded it: formgrader counts a submission as
        # autograded only when the gradebook's time equals the submitted folder's.
        submission = gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                key = (notebook.name, grade.name)
                if key in scores:
                    grade.auto_score = scores[key]
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
