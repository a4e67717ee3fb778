"""Text that reaches a terminal, the CSV or HTML, and student ids."""

from __future__ import annotations

import re

STUDENT_ID_PATTERN = re.compile(r"\A(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?<!\.)\Z")
"""A student id names folders in the course (nbgrader's layout) and rows of the grade table: 1-64
ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit, not ending with a
dot and without ``..``. The grader never names its own work folders after a student id."""


_ESCAPE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"[\t\n\r\u2028\u2029]")


def clean_text(value: object, max_chars: int = 2000, keep_spaces: bool = False) -> str:
    """``value`` as one line that is safe in a terminal, the CSV and HTML.

    Terminal escape sequences and control characters (also invisible and bidirectional ones)
    are removed, tabs and line breaks become spaces; runs of spaces are collapsed unless
    ``keep_spaces``; at most ``max_chars`` characters are kept.
    """
    text = _BREAKS.sub(" ", _CONTROL.sub("", _ESCAPE.sub("", "" if value is None else str(value))))
    if not keep_spaces:
        text = " ".join(text.split())
    return text[:max_chars]


def is_student_id(value: object) -> bool:
    """Whether ``value`` is a usable student id (:data:`STUDENT_ID_PATTERN`)."""
    return isinstance(value, str) and STUDENT_ID_PATTERN.match(value) is not None


def check_student_id(student_id: str) -> str:
    """Return ``student_id`` if it is a usable student id, else raise ``ValueError``."""
    if not is_student_id(student_id):
        shown = "".join(c if c.isprintable() else "?" for c in str(student_id))[:80]
        raise ValueError(
            f"Student id {shown!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' and not ending with a dot."
        )
    return student_id
