"""Grading ONE submission into a :class:`~autograder.core.records.GradeRecord`.

- :mod:`.spec`: :class:`GradingSpec`, what the grader decides once per batch (picklable: an
  engine task carries it), and the hashes that key a submission;
- :mod:`.workspace`: :class:`Workspace`, what a grading process prepares once per spec (the
  warm parent, the images every model runs on, a template gradebook, the student data copy);
- :mod:`.submission`: :func:`grade_submission`, one submission in its sandboxes, from data.

No threads are started here but the notebook run beside the trusted checks; no database, no
printing: the engine schedules, the store keeps.
"""

from .spec import GRADER_VERSION, GradingSpec, submission_sha256
from .submission import grade_submission, internal_error_record
from .workspace import Workspace

__all__ = [
    "GRADER_VERSION",
    "GradingSpec",
    "Workspace",
    "grade_submission",
    "internal_error_record",
    "submission_sha256",
]
