"""One collected submission graded in this process, without a cluster or a database:
:func:`grade_collected` (Gradescope's container grades exactly one)."""

from __future__ import annotations

from pathlib import Path

from ..core.records import GradeRecord
from ..core.settings import GradeSettings
from ..sandbox import reserved_uids
from .spec import make_spec, submission_sha256
from .submission import grade_submission
from .workspace import Workspace, course_key, restrict


def grade_collected(
    course_dir: Path, assignment: str, student: str, settings: GradeSettings
) -> GradeRecord:
    """The record of ``student``'s collected submission of ``assignment``, graded here with the
    same function the engine's tasks use."""
    spec = make_spec(course_dir, assignment, settings, course_key(settings.data_dir))
    restrict(spec.course_dir, settings.data_dir)
    workspace = Workspace.prepare(spec)
    try:
        with reserved_uids(1) as (uid,):
            digest = submission_sha256(spec.course_dir, assignment, student)
            return grade_submission(workspace, student, digest, uid)
    finally:
        workspace.close()
