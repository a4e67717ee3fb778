"""A tiny stand-in exercise (one notebook, a student module, a given helper) for the tests.

It has the shape of the real exercises (nbgrader metadata, solution regions in a notebook and in
``exercise_code/``, hidden tests) but runs in a second, so release/collect/report tests do not
depend on the real exercises' training. nbgrader's markers are built from pieces on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

BEGIN_SOLUTION = "### BEGIN " + "SOLUTION"
END_SOLUTION = "### END " + "SOLUTION"
BEGIN_HIDDEN = "### BEGIN " + "HIDDEN TESTS"
END_HIDDEN = "### END " + "HIDDEN TESTS"

SECRET_LINES = (
    "result = x + x  # doubling, the secret way",
    "return x * 2 + 0  # the secret forward, kept out of releases",
    "return 3 * x  # secret triple",
    "assert double(21) == 42, 'hidden double check'",
)
"""Lines of solution code that must never reach the release."""

MODULE = f'''"""Student module of the stand-in exercise."""


def double(x):
    """Return twice x."""
    {BEGIN_SOLUTION}
    {SECRET_LINES[0]}
    return result
    {END_SOLUTION}


class Net:
    """A net with one method to implement."""

    def forward(self, x):
        """Return 2 x."""
        {BEGIN_SOLUTION}
        {SECRET_LINES[1]}
        {END_SOLUTION}
'''

HELPER = '''"""Given helper of the stand-in exercise (restored from source when grading)."""


def check_positive(value):
    """Raise if value is not positive."""
    assert value > 0, "value must be positive"
'''


def nbgrader_cell(kind: str, source: str, **nbgrader: object) -> dict:
    """A notebook cell; keyword arguments become its nbgrader metadata (none: an ordinary cell)."""
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    if nbgrader:
        meta = {"grade": False, "solution": False, "locked": False, "task": False}
        meta.update(nbgrader, schema_version=3)
        cell["metadata"]["nbgrader"] = meta
    return cell


def notebook_document(cells: list[dict]) -> dict:
    """An nbformat 4.5 notebook of ``cells``, each given the id ``cell-<number>``."""
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook(test_points: tuple[int, int] = (2, 3)) -> dict:
    """The stand-in notebook: a solution cell and two graded test cells."""
    cells = [
        nbgrader_cell("markdown", "# Stand-in exercise\nImplement `double` and `triple`."),
        nbgrader_cell(
            "code", "from exercise_code.model import double", grade_id="imports", locked=True
        ),
        nbgrader_cell(
            "code",
            f"def triple(x):\n    {BEGIN_SOLUTION}\n    {SECRET_LINES[2]}\n    {END_SOLUTION}",
            grade_id="triple",
            solution=True,
        ),
        nbgrader_cell(
            "code",
            f"# {test_points[0]} points: double\nassert double(2) == 4\n"
            f"{BEGIN_HIDDEN}\n{SECRET_LINES[3]}\n{END_HIDDEN}",
            grade_id="test_double",
            grade=True,
            locked=True,
            points=test_points[0],
        ),
        nbgrader_cell(
            "code",
            f"# {test_points[1]} points: triple\nassert triple(3) == 9",
            grade_id="test_triple",
            grade=True,
            locked=True,
            points=test_points[1],
        ),
    ]
    return notebook_document(cells)


def make_exercise(repo_root: Path, name: str = "exercise_08") -> Path:
    """Write the stand-in exercise as ``repo_root/name`` (plus a stray model and cache)."""
    folder = repo_root / name
    code = folder / "exercise_code"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "model.py").write_text(MODULE)
    (code / "helpers.py").write_text(HELPER)
    (folder / "standin.ipynb").write_text(json.dumps(notebook(), indent=1))
    (folder / "models").mkdir()
    (folder / "models" / "classifier.pt2").write_bytes(b"instructor model")
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"cache")
    return folder
