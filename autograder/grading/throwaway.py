"""The gradebook of a throwaway course: :func:`make_template_gradebook`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .. import course
from .feedback import strip_hidden_tests


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
