"""The trusted grader's side of nbgrader's gradebook, for :mod:`autograder.grade`.

- :func:`gradebook_cells`: what each graded cell of an assignment is worth (the real gradebook,
  filled by ``release``).
- :func:`make_template_gradebook`: a gradebook for throwaway courses, holding the assignment's
  notebooks and cells but no student and no other assignment.
- :func:`read_capped_scores`: the per-cell scores a throwaway autograde wrote, capped to the
  real points (that file was written by the sandbox, so it is read as untrusted data).
- :func:`store_scores`: the capped scores into the real gradebook.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

from . import course
from .course import AutograderError

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
    """A copy of the real gradebook with only ``assignment`` and no students (vacuumed)."""
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
    connection = sqlite3.connect(template)
    connection.execute("VACUUM")
    connection.close()


def read_capped_scores(
    db: Path, cells: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    """Per-cell scores from the throwaway gradebook, each capped to [0, the real points].

    The file was written by the sandbox, so only numbers are taken from it: unknown cells are
    ignored and a cell without a usable score gets 0.
    """
    scores = dict.fromkeys(cells, 0.0)
    if not db.is_file() or db.is_symlink():
        return scores
    query = (
        "SELECT notebook.name, base_cell.name, grade.auto_score, grade.manual_score "
        "FROM grade JOIN base_cell ON grade.cell_id = base_cell.id "
        "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
        "JOIN notebook ON submitted_notebook.notebook_id = notebook.id"
    )
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return scores
    for notebook, cell, auto_score, manual_score in rows:
        key = (notebook, cell)
        value = manual_score if manual_score is not None else auto_score
        if key in cells and isinstance(value, int | float) and value == value:
            scores[key] = min(max(float(value), 0.0), cells[key])
    return scores


def store_scores(course_dir: Path, assignment: str, student: str, scores: Scores) -> None:
    """Write capped per-cell scores into the real gradebook (nbgrader's Gradebook API).

    Each grade's ``auto_score`` is set (not added), so storing twice changes nothing.
    """
    from nbgrader.api import Gradebook

    db_url = f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
    with warnings.catch_warnings(), Gradebook(db_url, course.COURSE_ID) as gb:
        # nbgrader's update_or_create_submission triggers harmless SQLAlchemy autoflush warnings.
        warnings.simplefilter("ignore")
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                key = (notebook.name, grade.name)
                if key in scores:
                    grade.auto_score = scores[key]
                    grade.manual_score = None
                    grade.needs_manual_grade = False
        gb.db.commit()
