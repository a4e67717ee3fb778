"""The grading spec of an assignment, for the callers of the engine (``grade``, ``serve``)."""

from __future__ import annotations

from pathlib import Path

from ..core.settings import GradeSettings
from ..grading import GradingSpec
from ..grading.spec import make_spec
from ..grading.workspace import course_key


def grading_spec(course_dir: Path, assignment: str, settings: GradeSettings) -> GradingSpec:
    """What every task of ``assignment`` in ``course_dir`` carries (the course must be released
    and the data prepared, else ``AutograderError``). Only the course key's fingerprint goes
    into it, never the key."""
    return make_spec(course_dir, assignment, settings, course_key(settings.data_dir))
