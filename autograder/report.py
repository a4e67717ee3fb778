"""``report``: the grade table ``course/grades/<assignment>.csv`` and per-student feedback.

The table has one row per collected student (rejected zips included), sorted by student id, with
the columns of :data:`autograder.results.COLUMNS`; it is built from the result records only, so
the same records always give the same bytes. It is written atomically.

Feedback, under ``course/feedback/<student>/<assignment>/`` (and, to hand back, one zip per
student of that folder in ``course/grades/<assignment>-feedback/<student>.zip``):

- ``<notebook>.html``: nbgrader's own ``generate_feedback`` page for each autograded notebook
  (HTML in the student's outputs is sanitized);
- ``summary.html``: a page built here from the result record only (the trusted verdicts): tests
  score, hidden accuracy, points, and the reason for every lost point, from the Jinja2 template
  ``autograder/templates/summary.html.j2`` with autoescaping on.

With ``lms`` and ``roster``, the files Moodle's or Canvas's grade import reads are written beside
the grade table (:func:`autograder.lms.write_lms_grades`). Rows flagged by ``grade`` (a notebook
test that passed where the same public check fails on the handed-in code, or poisoned probe data)
are listed at the end; nbgrader's notebook page is rendered with the course's own ``feedback``
template (:func:`autograder.grading.feedback.exporter_config`).

Entry point: :func:`report`.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .course import (
    HIDDEN_PASS_ACCURACY,
    autograded_dir,
    exercise_dir,
    feedback_dir,
    grades_csv,
    nbgrader_api,
    points_available,
    require_course,
    source_dir,
    submitted_students,
    write_config,
    write_course_file,
)
from .grading import feedback
from .results import COLUMNS, clean_text, is_student_id, read_results

CSV_COLUMNS = [*COLUMNS, "flags"]
HANDOUT_DATE = (2024, 1, 1, 0, 0, 0)
"""The date of every entry of a feedback zip (same pages, same bytes)."""
"""The grade table: the design's columns, then the grader's flags for a human look."""
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html", "j2"]),
)


def report(
    course_dir: Path,
    assignment: str,
    lms: str | None = None,
    roster: Path | None = None,
    canvas_column: str | None = None,
) -> Path:
    """Write the grade table and the feedback of ``assignment``; print the table; return the CSV.

    With ``lms`` (``moodle`` or ``canvas``) and ``roster``, also write that LMS's grade-import
    files (:func:`autograder.lms.write_lms_grades`). Raises ``AutograderError`` when
    ``course_dir`` is not a course (:func:`autograder.course.require_course`).
    """
    course_dir = require_course(course_dir)
    exercise_dir(assignment)
    if not (course_dir / "nbgrader_config.py").is_file():
        write_config(course_dir)
    rows = grade_rows(course_dir, assignment)
    path = write_csv(course_dir, assignment, rows)
    graded = _has_gradebook_entry(course_dir, assignment, [row["student_id"] for row in rows])
    failures = []
    for row in rows:
        student = row["student_id"]
        pages = []
        if row["status"] != "rejected" and student in graded:
            pages = _nbgrader_feedback(course_dir, assignment, student)
            if pages is None:
                failures.append(student)
                pages = []
        _write_summary(course_dir, assignment, row, pages)
    handouts = _write_handouts(course_dir, assignment, rows)
    if not rows:
        print(f"No collected submissions of {assignment} yet; run collect, then grade.")
    print(format_table(rows))
    print(f"Wrote {path} ({len(rows)} students) and feedback in {course_dir / 'feedback'}.")
    if rows:
        print(f"One zip of feedback per student to hand back: {handouts}.")
    _record_students(course_dir, rows, roster)
    if lms:
        from .lms import write_lms_grades

        if roster is None:
            raise ValueError(f"--lms {lms} needs --roster CSV, the roster of LMS ids to students.")
        written = write_lms_grades(course_dir, assignment, rows, Path(roster), lms, canvas_column)
        print(f"Wrote the {lms} grade import {written}.")
    flagged = [row for row in rows if row.get("flags")]
    for row in flagged:
        print(f"Flagged {row['student_id']}: {clean_text(row['flags'])}.")
    if rows and not flagged:
        print("No submission was flagged.")
    if failures:
        print(
            f"nbgrader could not build the notebook feedback of {', '.join(failures)}; their "
            "summary pages are complete, run report again after grade to retry."
        )
    return path


def grade_rows(course_dir: Path, assignment: str) -> list[dict]:
    """One row per collected student: their result record, or a 'not graded' row."""
    records = {r["student_id"]: r for r in read_results(course_dir, assignment)}
    submitted = set(submitted_students(course_dir, assignment))
    rows = []
    for student in sorted(submitted | set(records)):
        record = records.get(student)
        if record is None:
            tests_max, hidden_max = points_available(assignment, source_dir(course_dir, assignment))
            record = {
                "student_id": student,
                "status": "not graded",
                "tests_max": tests_max,
                "hidden_max": hidden_max,
                "total_max": tests_max + hidden_max,
                "message": "This submission has not been graded yet; run grade, then report.",
            }
        elif student not in submitted and record.get("status") != "rejected":
            continue
        rows.append(
            {
                **{column: record.get(column) for column in COLUMNS},
                "flags": record.get("flags") or "",
                "details": record.get("details") or [],
            }
        )
    return rows


def _cell_text(column: str, value: object) -> str:
    """A value as the grade table shows it: numbers rounded, text on one line without control
    characters, and no leading character that makes a spreadsheet run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        digits = 4 if column == "hidden_accuracy" else 2
        return f"{round(float(value), digits):g}"
    text = clean_text(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_csv(course_dir: Path, assignment: str, rows: list[dict]) -> Path:
    """Write ``rows`` (the :data:`CSV_COLUMNS` of each) atomically as the grade table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell_text(column, row.get(column)) for column in CSV_COLUMNS])
    path = grades_csv(course_dir, assignment)
    write_course_file(path, buffer.getvalue().encode("utf-8"))
    return path


def format_table(rows: list[dict]) -> str:
    """The grade table as aligned text (what ``report`` and ``demo`` print)."""
    columns = ["student_id", "status", "tests", "hidden_acc", "hidden", "total", "message"]
    lines = []
    for row in rows:
        lines.append(
            [
                row["student_id"],
                row["status"] or "",
                f"{_cell_text('', row['tests_score']) or '-'}/{_cell_text('', row['tests_max'])}",
                _cell_text("hidden_accuracy", row["hidden_accuracy"]) or "-",
                f"{_cell_text('', row['hidden_score']) or '-'}/{_cell_text('', row['hidden_max'])}",
                f"{_cell_text('', row['total']) or '-'}/{_cell_text('', row['total_max'])}",
                _cell_text("message", row["message"])[:100],
            ]
        )
    widths = [
        max(len(str(x)) for x in [name, *(line[i] for line in lines)])
        for i, name in enumerate(columns)
    ]

    def render(cells: list) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([render(columns), render(["-" * w for w in widths]), *map(render, lines)])


def _has_gradebook_entry(course_dir: Path, assignment: str, students: list[str]) -> set[str]:
    """The students with a submission of ``assignment`` in nbgrader's gradebook."""
    from nbgrader.api import MissingEntry

    if not (course_dir / "gradebook.db").exists():
        return set()
    found = set()
    with nbgrader_api(course_dir).gradebook as gradebook:
        for student in students:
            try:
                gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            found.add(student)
    return found


def _nbgrader_feedback(course_dir: Path, assignment: str, student: str) -> list[str] | None:
    """Run nbgrader's generate_feedback if there is an autograded notebook; the pages made."""
    notebooks = sorted(autograded_dir(course_dir, assignment, student).glob("*.ipynb"))
    if not notebooks:
        return []
    api = nbgrader_api(
        course_dir, **{"HTMLExporter.sanitize_html": True, **feedback.exporter_config()}
    )
    result = api.generate_feedback(assignment, student, force=True)
    if not result.get("success"):
        return None
    folder = feedback_dir(course_dir, assignment, student)
    return sorted(p.name for p in folder.glob("*.html") if p.name != "summary.html")


def lost_points(row: dict) -> list[dict]:
    """Every place the student lost points, from the trusted verdicts in the record:
    ``{"item", "score", "max", "reason"}`` dicts, in the notebook's order."""
    lost = [d for d in row.get("details") or [] if (d.get("score") or 0) < (d.get("max") or 0)]
    if not lost and row.get("status") not in ("graded", "not graded") and row.get("message"):
        lost = [
            {"item": "grading", "score": 0, "max": row.get("total_max"), "reason": row["message"]}
        ]
    return [{**entry, "reason": clean_text(entry.get("reason")) or "-"} for entry in lost]


def _write_handouts(course_dir: Path, assignment: str, rows: list[dict]) -> Path:
    """``grades/<assignment>-feedback/<student>.zip`` for every row: the student's feedback
    folder (``<assignment>/summary.html`` and the notebook pages), to attach in the LMS or send.
    Deterministic bytes (sorted, fixed dates); zips of students no longer in the table go."""
    folder = grades_csv(course_dir, assignment).parent / f"{assignment}-feedback"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for row in rows:
        student = row["student_id"]
        source = feedback_dir(course_dir, assignment, student)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                name = f"{assignment}/{path.relative_to(source).as_posix()}"
                info = zipfile.ZipInfo(name, date_time=HANDOUT_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
        write_course_file(folder / f"{student}.zip", buffer.getvalue())
        wanted.add(f"{student}.zip")
    for old in folder.glob("*.zip"):
        if old.name not in wanted:
            old.unlink()
    return folder


def _record_students(course_dir: Path, rows: list[dict], roster: Path | None) -> None:
    """Every student of the table (not the placeholders of unnamed uploads) and of the roster
    into nbgrader's gradebook, with names and emails from the roster."""
    from .collect import PLACEHOLDER_PREFIX
    from .gradebook import record_students, split_name

    students = {
        row["student_id"]: {}
        for row in rows
        if not row["student_id"].startswith(PLACEHOLDER_PREFIX)
    }
    if roster is not None:
        from .lms import read_roster

        for entry in read_roster(Path(roster)).values():
            if is_student_id(entry.student_id):
                students[entry.student_id] = {**split_name(entry.full_name), "email": entry.email}
    record_students(course_dir, students)


def _write_summary(course_dir: Path, assignment: str, row: dict, pages: list[str]) -> Path:
    path = feedback_dir(course_dir, assignment, row["student_id"]) / "summary.html"
    write_course_file(path, summary_html(course_dir, assignment, row, pages).encode("utf-8"))
    return path


def summary_html(course_dir: Path, assignment: str, row: dict, pages: list[str]) -> str:
    """The trusted summary page of one student (rendered with autoescaping)."""
    cleaned = {k: clean_text(v) if isinstance(v, str) else v for k, v in row.items()}
    return TEMPLATES.get_template("summary.html.j2").render(
        assignment=assignment,
        row=cleaned,
        lost=lost_points(row),
        notes=_collect_notes(course_dir, assignment, row["student_id"]),
        pages=pages,
        pass_accuracy=HIDDEN_PASS_ACCURACY,
        number=lambda value: _cell_text("", value) or "-",
    )


def _collect_notes(course_dir: Path, assignment: str, student: str) -> str:
    path = course_dir / "collected" / f"{assignment}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(student, {})
    except (OSError, ValueError):
        return ""
    ignored = entry.get("ignored") or []
    if not ignored:
        return ""
    return (
        f"You handed in {len(ignored) + 1} zips; the newest, {Path(entry['zip']).name}, was "
        f"graded (ignored: {', '.join(ignored)})."
    )
