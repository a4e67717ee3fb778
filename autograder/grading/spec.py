"""What one batch of grading decides once: :class:`GradingSpec`, and the submission hashes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .. import course
from ..core.settings import GradeSettings
from ..files import sha256_of

GRADER_VERSION = "3"
"""Part of every grader version: bump it when a change of the grader changes results."""


@dataclass(frozen=True)
class GradingSpec:
    """Everything a grading worker needs besides one submission's id; small and picklable.

    ``repo_root`` is the exercises' root the grader used (the source of each assignment's
    ``grading/``); ``cells`` are the graded cells ``(notebook, grade id, points)`` from the real
    gradebook, in the notebooks' order; ``grader_version`` keys every result with the grader,
    the exercise's source and trusted checks and the course key's fingerprint.
    """

    course_dir: Path
    assignment: str
    repo_root: Path
    settings: GradeSettings
    cells: tuple[tuple[str, str, float], ...]
    grader_version: str

    @property
    def hidden_cell(self) -> tuple[str, str] | None:
        hidden = course.HIDDEN_CELL.get(self.assignment)
        return next(((nb, cell) for nb, cell, _ in self.cells if cell == hidden), None)

    @property
    def hidden_item(self) -> str | None:
        return f"{self.hidden_cell[0]}: {self.hidden_cell[1]}" if self.hidden_cell else None

    @property
    def notebooks(self) -> list[str]:
        return list(dict.fromkeys(notebook for notebook, _, _ in self.cells))

    @property
    def points(self) -> dict[tuple[str, str], float]:
        return {(notebook, cell): points for notebook, cell, points in self.cells}


def make_spec(
    course_dir: Path, assignment: str, settings: GradeSettings, key: bytes
) -> GradingSpec:
    """The spec of grading ``assignment`` of ``course_dir`` now (the course must be released)."""
    from . import trusted

    points = course.gradebook_cells(course_dir, assignment)
    order = []
    for path in sorted(course.source_dir(course_dir, assignment).glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if (path.stem, grade_id) in points:
                order.append((path.stem, grade_id))
    order += [item for item in sorted(points) if item not in order]
    source_hash = tree_hash(course.source_dir(course_dir, assignment))
    source_hash += tree_hash(trusted.grading_dir(assignment))
    key_print = hashlib.sha256(key).hexdigest()[:16]
    version = hashlib.sha256(f"{source_hash}:{key_print}".encode()).hexdigest()[:16]
    return GradingSpec(
        course_dir=Path(course_dir).resolve(),
        assignment=assignment,
        repo_root=course.REPO_ROOT,
        settings=settings,
        cells=tuple((nb, cell, points[(nb, cell)]) for nb, cell in order),
        grader_version=f"{GRADER_VERSION}-{version}",
    )


def tree_hash(folder: Path) -> str:
    """sha256 over the names and contents of the files below ``folder`` (caches left out)."""
    digest = hashlib.sha256()
    files = [
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
    ]
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_of(path)))
    return digest.hexdigest()


def submission_sha256(course_dir: Path, assignment: str, student: str) -> str:
    """The hash of a collected submission (its folder's names and contents)."""
    return tree_hash(course.submitted_dir(course_dir, assignment, student))


def seed_digest(grader_version: str, submission: str) -> str:
    """What the seeds of a submission's checks are drawn from (with the course key)."""
    return hashlib.sha256(f"{grader_version}:{submission}".encode()).hexdigest()
