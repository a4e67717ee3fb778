"""What students get: explicit stub contracts, a release that passes ruff, and their environment.

The release is the real one (``autograder.release.release``: nbgrader's generate_assignment plus
the stripping of ``.py`` files) into a temporary course folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder import course  # noqa: E402

EXERCISES = ("exercise_08", "exercise_08_optional")
BEGIN = "### BEGIN " + "SOLUTION"
BINDS_NONE = re.compile(r"\s*(self\.)?\w+(, (self\.)?\w+)* = None(, None)*")


def _begins(lines: list[str]) -> list[int]:
    return [number for number, line in enumerate(lines) if BEGIN in line]


def solution_regions() -> list[tuple[str, list[str], int]]:
    """(where, lines, index of the opening marker) of every solution region, modules and cells."""
    found = []
    for exercise in EXERCISES:
        for module in course.student_modules(exercise):
            lines = (ROOT / exercise / module).read_text().splitlines()
            found += [(f"{exercise}/{module}", lines, i) for i in _begins(lines)]
        for notebook in (ROOT / exercise).glob("*.ipynb"):
            for cell in nbformat.read(notebook, as_version=4).cells:
                lines = cell.source.splitlines()
                where = f"{notebook.name} {cell.metadata.get('nbgrader', {}).get('grade_id')}"
                found += [(where, lines, i) for i in _begins(lines)]
    return found


def test_every_student_region_starts_with_the_names_it_must_set() -> None:
    """CS231n's ``out = None``: the names a region must set are bound before it, under a
    comment that says what goes in them, so the released stub names nothing undefined."""
    regions = solution_regions()
    assert len(regions) >= 6 + 9 + 1  # layers.py, networks.py + training.py, the answer cell
    for where, lines, begin in regions:
        assert begin >= 2, where
        assert BINDS_NONE.fullmatch(lines[begin - 1]), (where, lines[begin - 1])
        assert lines[begin - 2].strip().startswith("#"), (where, lines[begin - 2])


@pytest.mark.slow
def test_the_real_release_passes_ruff_and_ships_the_student_environment(tmp_path: Path) -> None:
    from autograder.release import release

    built, dist = tmp_path / "built", tmp_path / "dist"
    zips = release(built, list(EXERCISES), dist_dir=dist)

    released = built / "release"
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"), "."],
        cwd=released,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    checked = list(released.rglob("*.py")) + list(released.rglob("*.ipynb"))
    assert len(checked) > 20
    training = (released / "exercise_08" / "exercise_code" / "training.py").read_text()
    assert "    loss = None\n    # YOUR CODE HERE\n    raise NotImplementedError(" in training
    for exercise, zip_path in zip(EXERCISES, zips, strict=True):
        names = set(zipfile.ZipFile(zip_path).namelist())
        assert {f"{exercise}/requirements.txt", f"{exercise}/environment.yml"} <= names
