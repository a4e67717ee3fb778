"""What Moodle and Canvas hand us: the names in their bulk downloads, and the roster.

Each layout below is the one the LMS's own code writes or reads; the source is named with it.

Bulk downloads (read by ``collect --from moodle|canvas``; :func:`parse_download_name`):

- **Moodle**, assignment "Download all submissions" (``mod/assign/classes/downloader.php``;
  before 4.1 ``download_submissions()`` in ``mod/assign/locallib.php``; MoodleDocs "Assignment
  settings" / "Download submissions in folders"). The zip is
  ``<course>-<assignment>-<cmid>.zip``. The prefix of a student is ``<Full Name>_<participant
  id>`` (underscores in the name become spaces; with anonymous submissions the name is
  ``Participant``); the participant id is the number of the grading worksheet's ``Participant
  12345`` identifier. Without "Download submissions in folders" every file is
  ``<prefix>_assignsubmission_file_<original name>`` (online text:
  ``<prefix>_assignsubmission_onlinetext_onlinetext.html``). With it (the default since 3.1)
  every student has a folder, ``<prefix>_assignsubmission_file/`` (Moodle 4.1 and later) or
  ``<prefix>_assignsubmission_file_/`` (3.1 to 4.0), holding the files under their original
  names and sub-folders.
- **Canvas**, "Download Submissions" (``lib/content_zipper.rb`` of canvas-lms; Instructor Guide
  "How do I download all student submissions for an assignment?"). The zip is
  ``<course>-<assignment>_submissions.zip``, flat. An upload is
  ``<name>[_LATE]_<user id>_<attachment id>_<original name>`` where ``<name>`` is the lowercase
  sortable name without punctuation (``doejane``); with anonymous grading it is
  ``[LATE_]anon_<anonymous id>_<attachment id>_<original name>``; text and URL entries are
  ``<name>[_LATE]_<user id>_text.html`` / ``_link.html``. The user id is the ``ID`` column of
  Canvas's gradebook export.

The roster (:func:`read_roster`) is a UTF-8 CSV (a byte-order mark is fine) that maps the LMS id
to the course's student id, one student a row. Its columns, by header name in any order (header
names are case-insensitive; spaces count as ``_``), or in this order without a header row:

    lms_id        Moodle participant id (``12345`` or ``Participant 12345``) or Canvas user id
    student_id    the course's student id (1-64 ASCII letters, digits, '.', '_', '-')
    full_name     optional: Moodle "Full name", Canvas "Student"
    email         optional: Moodle "Email address"
    section       optional: Canvas "Section"
    sis_user_id   optional: Canvas "SIS User ID"
    sis_login_id  optional: Canvas "SIS Login ID"
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .course import AutograderError
from .results import clean_text

PRESETS: dict[str, str] = {"moodle": "Moodle", "canvas": "Canvas"}
"""The LMSs whose bulk downloads are supported, with their display names."""

ID_NAMES = {"moodle": "participant id", "canvas": "user id"}
"""What each LMS calls the id in its download names (the roster's ``lms_id``)."""

LAYOUTS = {
    "moodle": "<Full Name>_<participant id>_assignsubmission_file_<file>",
    "canvas": "<name>_<user id>_<attachment id>_<file>",
}
"""The download names of each LMS, as a person reads them."""

ROSTER_COLUMNS = (
    "lms_id",
    "student_id",
    "full_name",
    "email",
    "section",
    "sis_user_id",
    "sis_login_id",
)


@dataclass(frozen=True)
class DownloadName:
    """What an LMS download's file name says: whose it is and what the student called it."""

    lms_id: str
    file_name: str
    late: bool = False


_MOODLE_PREFIX = r"(?P<name>[^/]*?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)"
_MOODLE_FILE = re.compile(_MOODLE_PREFIX + r"_(?P<file>[^/]+)")
_MOODLE_FOLDER = re.compile(_MOODLE_PREFIX + r"_?")
_CANVAS_ANONYMOUS = re.compile(
    r"(?:(?P<late>late)_)?(?P<id>anon_[a-z0-9]+)_(?P<file_id>\d+)_(?P<file>.+)", re.IGNORECASE
)
_CANVAS_UPLOAD = re.compile(
    r"(?P<name>\w*?)(?:_(?P<late>late))?_(?P<id>\d+)_(?P<file_id>\d+)_(?P<file>.+)", re.IGNORECASE
)
_CANVAS_ENTRY = re.compile(
    r"(?P<name>\w*?)(?:_(?P<late>late))?_(?P<id>\d+)_(?P<file>text\.html|link\.html)",
    re.IGNORECASE,
)


def parse_download_name(preset: str, member: str) -> DownloadName | None:
    """Whose file ``member`` (a path inside the LMS's bulk download, ``/``-separated) is.

    Returns ``None`` when the name is not in the layout of ``preset`` (see the module docstring).
    """
    check_preset(preset)
    if preset == "moodle":
        top, _, rest = member.partition("/")
        if rest:
            match = _MOODLE_FOLDER.fullmatch(top)
            file_name = rest.rsplit("/", 1)[-1]
        else:
            match = _MOODLE_FILE.fullmatch(member)
            file_name = match["file"] if match else ""
        return DownloadName(match["id"], file_name) if match else None
    if "/" in member:
        return None
    for pattern in (_CANVAS_ANONYMOUS, _CANVAS_UPLOAD, _CANVAS_ENTRY):
        match = pattern.fullmatch(member)
        if match:
            return DownloadName(match["id"], match["file"], late=bool(match["late"]))
    return None


def check_preset(preset: str) -> str:
    """Return ``preset`` if it is one of :data:`PRESETS`, else raise ``AutograderError``."""
    if preset not in PRESETS:
        raise AutograderError(f"Unknown LMS {preset!r}: use one of {', '.join(PRESETS)}.")
    return preset


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster (see the module docstring for the columns)."""

    lms_id: str
    student_id: str
    full_name: str = ""
    email: str = ""
    section: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""


def read_roster(path: Path) -> dict[str, RosterEntry]:
    """The roster at ``path`` as ``{lms_id: entry}``.

    ``student_id`` values are kept as written (collect checks each one and rejects the uploads
    of a bad one); every other value is cleaned of control characters. Raises
    ``AutograderError`` for a missing, unreadable or empty roster, a row without ``lms_id`` and
    an LMS id given two different student ids.
    """
    path = Path(path)
    shown = clean_text(path, 200)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AutograderError(
            f"The roster {shown} does not exist; give the CSV that maps LMS ids to student ids."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AutograderError(
            f"The roster {shown} cannot be read ({clean_text(error, 200)}); save it as a UTF-8 "
            "CSV file and try again."
        ) from error
    rows = [(number, row) for number, row in _csv_rows(text) if any(c.strip() for c in row)]
    header = [_column_key(cell) for cell in rows[0][1]] if rows else []
    if {"lms_id", "student_id"} <= set(header):
        columns, rows = header, rows[1:]
    else:
        columns = list(ROSTER_COLUMNS)
    if not rows:
        raise AutograderError(f"The roster {shown} has no students; add a row per student.")
    roster: dict[str, RosterEntry] = {}
    lines: dict[str, int] = {}
    for number, row in rows:
        values = {
            column: cell.strip() for column, cell in zip(columns, row, strict=False) if column
        }
        lms_id = _lms_id(values.get("lms_id", ""))
        if not lms_id:
            raise AutograderError(
                f"Row {number} of the roster {shown} has no lms_id; fill it in or delete the row."
            )
        entry = RosterEntry(
            lms_id=lms_id,
            student_id=values.get("student_id", ""),
            **{column: clean_text(values.get(column, ""), 200) for column in ROSTER_COLUMNS[2:]},
        )
        if lms_id in roster and roster[lms_id].student_id != entry.student_id:
            raise AutograderError(
                f"The roster {shown} gives the LMS id {lms_id} two student ids (rows "
                f"{lines[lms_id]} and {number}); keep one row per LMS id."
            )
        roster.setdefault(lms_id, entry)
        lines.setdefault(lms_id, number)
    return roster


def _csv_rows(text: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise AutograderError(
            f"The roster is not a valid CSV file near line {reader.line_num} ({error}); fix it "
            "and try again."
        ) from error


def _column_key(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().lower())


def _lms_id(value: str) -> str:
    """The LMS id in a roster cell; Moodle's ``Participant 12345`` gives ``12345``."""
    value = clean_text(value, 200)
    match = re.fullmatch(r"participant\s*(\d+)", value, re.IGNORECASE)
    return match.group(1) if match else value
