"""What Moodle and Canvas hand us and take back: bulk-download names, the roster, grade imports.

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

Grade imports (:func:`write_lms_grades`, written next to the grade table in ``course/grades/``):

- **Moodle** offline grading worksheet, ``<assignment>-moodle-worksheet.csv``, for the
  assignment's "Upload grading worksheet" (feedback type "Offline grading worksheet"). The
  importer (``mod/assign/feedback/offline/importgradeslib.php``) needs the columns
  ``Identifier`` (``Participant <id>``), ``Grade`` and ``Last modified (grade)``, and reads
  ``Feedback comments`` when feedback comments are on; headers are matched in the language of
  the Moodle user, so these are the English ones (the worksheet download of an English Moodle
  has the same, ``mod/assign/gradingtable.php``). UTF-8 with a byte-order mark and commas, as
  Moodle's own download; grades with a decimal point, which Moodle reads in every language. A
  grade in Moodle changed later than ``Last modified (grade)`` (when the grader decided ours) is
  left alone unless the upload form's "Allow updating records that have been modified more
  recently in Moodle than in the spreadsheet" is ticked. The assignment's maximum grade in
  Moodle must be the grade table's ``total_max`` (Moodle skips grades above its maximum).
- **Canvas** gradebook import, ``<assignment>-canvas-gradebook.csv``, for Grades > Import
  (``app/models/gradebook_importer.rb``; Instructor Guide "How do I import grades in the
  Gradebook?"): the header ``Student, ID, SIS User ID, SIS Login ID, Section, <assignment
  column>``, then the ``    Points Possible`` row, then one row per student; UTF-8 without a
  byte-order mark and commas, as Canvas's own export by default. Canvas finds the student by
  ``ID`` (then SIS ids, then name) and the assignment by the id in ``<title> (<id>)``, else by
  its title, else it creates a new assignment. This import reads grades only, never comments, so
  the comments go to ``<assignment>-canvas-comments.json``: the body of the Submissions API
  request "Grade or comment on multiple submissions" (``POST /api/v1/courses/<course
  id>/assignments/<assignment id>/submissions/update_grades``, ``grade_data[<user
  id>][text_comment]``).

Each row carries one sentence of feedback (:func:`feedback_comment`): the grade table's message.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .course import (
    AutograderError,
    grades_csv,
    points_available,
    source_dir,
    submitted_dir,
    write_course_file,
)
from .results import clean_text, read_result

NO_SUBMISSION = "no submission"
"""The status of a roster student's row in the LMS files when nothing was collected for them."""

PRESETS: dict[str, str] = {"moodle": "Moodle", "canvas": "Canvas"}
"""The LMSs whose bulk downloads and grade imports are supported, with their display names."""

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

MOODLE_COLUMNS = [
    "Identifier",
    "Full name",
    "Email address",
    "Status",
    "Grade",
    "Maximum Grade",
    "Grade can be changed",
    "Last modified (submission)",
    "Last modified (grade)",
    "Feedback comments",
]
MOODLE_PARTICIPANT = "Participant "
"""Moodle's ``hiddenuser`` string: the Identifier is this followed by the participant id."""

CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_POSSIBLE = "    Points Possible"
"""First cell of the row under the header in Canvas's export (the importer looks for the words)."""

MAX_COMMENT_CHARS = 1000


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


def feedback_comment(row: dict) -> str:
    """The row's one sentence of feedback for the LMS: its message, or "Full marks."."""
    message = clean_text(row.get("message"), MAX_COMMENT_CHARS)
    return message or "Full marks."


def write_lms_grades(
    course_dir: Path,
    assignment: str,
    rows: list[dict],
    roster_path: Path,
    preset: str,
    canvas_column: str | None = None,
) -> Path:
    """Write the grade-import file of ``preset`` for ``rows`` (the grade table); return its path.

    Every student of the roster is written: with their grade, or, when nothing of theirs was
    collected, with 0 points, the status "no submission" and a sentence saying so. Rows of
    students not in the roster and rows not graded yet are left out and named in one printed
    line (the LMS keeps what it has for them). ``canvas_column`` is the Canvas
    assignment column as Canvas's gradebook export writes it, ``<title> (<assignment id>)``; it
    defaults to ``assignment`` (Canvas then matches the assignment by title, or creates one). The
    files are written atomically; for Canvas the comments file is written beside the CSV.
    """
    check_preset(preset)
    roster = read_roster(roster_path)
    absent = _no_submission_rows(course_dir, assignment, rows, roster, roster_path)
    chosen, missing, ungraded = _students_to_write([*rows, *absent], roster, roster_path)
    folder = grades_csv(course_dir, assignment).parent
    if preset == "moodle":
        times = {row["student_id"]: _grade_time(course_dir, assignment, row) for row, _ in chosen}
        submitted = {
            row["student_id"]: _submission_time(course_dir, assignment, row) for row, _ in chosen
        }
        path = folder / f"{assignment}-moodle-worksheet.csv"
        write_course_file(path, moodle_worksheet(chosen, submitted, times).encode("utf-8-sig"))
        written = [path]
    else:
        path = folder / f"{assignment}-canvas-gradebook.csv"
        comments = folder / f"{assignment}-canvas-comments.json"
        write_course_file(
            path, canvas_gradebook(chosen, canvas_column or assignment).encode("utf-8")
        )
        write_course_file(comments, canvas_comments(chosen).encode("utf-8"))
        written = [path, comments]
    print(
        f"Wrote {' and '.join(map(str, written))} ({len(chosen)} students) for {PRESETS[preset]}."
    )
    if missing:
        print(f"Left out, not in the roster {roster_path}: {', '.join(missing)}.")
    if ungraded:
        print(f"Left out, not graded yet: {', '.join(ungraded)}.")
    if absent:
        names = ", ".join(row["student_id"] for row in absent)
        print(f"0 points, roster students with no submission: {names}.")
    return path


def _no_submission_rows(
    course_dir: Path, assignment: str, rows: list[dict], roster: dict, roster_path: Path
) -> list[dict]:
    """A row of 0 points for every roster student who has no row at all (nothing was collected
    for them), so that every student of the roster gets a grade and a sentence why. Its grade
    time is the roster file's (a grade changed in the LMS later is left alone by Moodle)."""
    have = {row["student_id"] for row in rows}
    absent = sorted({entry.student_id for entry in roster.values()} - have)
    if not absent:
        return []
    maxima = {row.get("total_max") for row in rows if row.get("total_max") is not None}
    if len(maxima) == 1:
        total_max = maxima.pop()
    else:
        total_max = sum(points_available(assignment, source_dir(course_dir, assignment)))
    roster_time = _iso(datetime.fromtimestamp(Path(roster_path).stat().st_mtime, UTC))
    message = (
        f"No submission of {assignment} was collected for you, so it gets 0 points; if you "
        "handed one in, tell your instructor."
    )
    return [
        {
            "student_id": student,
            "status": NO_SUBMISSION,
            "total": 0.0,
            "total_max": total_max,
            "message": message,
            "finished": roster_time,
        }
        for student in absent
    ]


def _students_to_write(
    rows: list[dict], roster: dict[str, RosterEntry], roster_path: Path
) -> tuple[list[tuple[dict, RosterEntry]], list[str], list[str]]:
    by_student: dict[str, list[RosterEntry]] = {}
    for entry in roster.values():
        by_student.setdefault(entry.student_id, []).append(entry)
    chosen, missing, ungraded = [], [], []
    for row in rows:
        student = row["student_id"]
        entries = by_student.get(student, [])
        if row.get("total") is None:
            ungraded.append(student)
        elif not entries:
            missing.append(student)
        elif len(entries) > 1:
            raise AutograderError(
                f"The roster {clean_text(roster_path, 200)} gives {student} several LMS ids "
                f"({', '.join(e.lms_id for e in entries)}); keep the one the LMS grades."
            )
        else:
            chosen.append((row, entries[0]))
    return chosen, missing, ungraded


def moodle_worksheet(
    students: list[tuple[dict, RosterEntry]],
    submitted: dict[str, str],
    graded: dict[str, str],
) -> str:
    """The text of Moodle's offline grading worksheet (:data:`MOODLE_COLUMNS`), without a BOM.

    ``submitted`` and ``graded`` give each student's "Last modified" times as text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(MOODLE_COLUMNS)
    for row, entry in students:
        writer.writerow(
            [
                MOODLE_PARTICIPANT + entry.lms_id,
                entry.full_name,
                entry.email,
                clean_text(row.get("status"), 100),
                _points(row.get("total")),
                _points(row.get("total_max")),
                "Yes",
                submitted.get(row["student_id"], "-"),
                graded[row["student_id"]],
                feedback_comment(row),
            ]
        )
    return buffer.getvalue()


def canvas_gradebook(students: list[tuple[dict, RosterEntry]], column: str) -> str:
    """The text of a Canvas gradebook import: header, Points Possible row, one row per student."""
    column = clean_text(column, 300)
    maxima = {_points(row.get("total_max")) for row, _ in students}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*CANVAS_STUDENT_COLUMNS, column])
    empty = [""] * (len(CANVAS_STUDENT_COLUMNS) - 1)
    writer.writerow([CANVAS_POINTS_POSSIBLE, *empty, maxima.pop() if len(maxima) == 1 else ""])
    for row, entry in students:
        writer.writerow(
            [
                entry.full_name,
                entry.lms_id,
                entry.sis_user_id,
                entry.sis_login_id,
                entry.section,
                _points(row.get("total")),
            ]
        )
    return buffer.getvalue()


def canvas_comments(students: list[tuple[dict, RosterEntry]]) -> str:
    """The JSON body of Canvas's "Grade or comment on multiple submissions" with the comments."""
    grade_data = {entry.lms_id: {"text_comment": feedback_comment(row)} for row, entry in students}
    return json.dumps({"grade_data": grade_data}, indent=2, ensure_ascii=False) + "\n"


def _points(value: object) -> str:
    return "" if value is None else f"{float(value):.2f}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _grade_time(course_dir: Path, assignment: str, row: dict) -> str:
    """When the grade was decided: when its record was stored (a row of no submission: its
    own time; else now)."""
    try:
        if row.get("status") == NO_SUBMISSION:
            return row["finished"]
        record = read_result(course_dir, assignment, row["student_id"]) or {}
        return _iso(datetime.fromisoformat(record["finished"]))
    except (KeyError, TypeError, ValueError):
        return _iso(datetime.now(UTC))


def _submission_time(course_dir: Path, assignment: str, row: dict) -> str:
    """When the collected zip was made (nbgrader's ``timestamp.txt``), or Moodle's ``-``."""
    try:
        stamp = submitted_dir(course_dir, assignment, row["student_id"]) / "timestamp.txt"
        moment = datetime.strptime(stamp.read_text()[:40].strip(), "%Y-%m-%d %H:%M:%S.%f UTC")
    except (OSError, ValueError, UnicodeDecodeError):
        return "-"
    return _iso(moment.replace(tzinfo=UTC))
