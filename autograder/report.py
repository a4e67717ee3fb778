"""``report``: the grade table ``course/grades/<assignment>.csv`` and per-student feedback.

The table has one row per collected student (rejected zips included), sorted by student id, with
the columns of :data:`autograder.results.COLUMNS`; it is built from the result records only, so
the same records always give the same bytes. It is written atomically.

Feedback, under ``course/feedback/<student>/<assignment>/``:

- ``<notebook>.html``: nbgrader's own ``generate_feedback`` page for each autograded notebook
  (HTML in the student's outputs is sanitized);
- ``summary.html``: a page built here from trusted data only (the result record, the gradebook and
  the error names of failed test cells): tests score, hidden accuracy, points, and the reason for
  every lost point. Everything that came from a student is HTML-escaped.

Entry point: :func:`report`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
from pathlib import Path

from .course import (
    HIDDEN_PASS_ACCURACY,
    autograded_dir,
    exercise_dir,
    feedback_dir,
    grades_csv,
    nbgrader_api,
    points_available,
    source_dir,
    submitted_students,
    write_config,
)
from .results import COLUMNS, read_results

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_REASON_CHARS = 300
NUMERIC = {"tests_score", "tests_max", "hidden_score", "hidden_max", "total", "total_max"}


def report(course_dir: Path, assignment: str) -> Path:
    """Write the grade table and the feedback of ``assignment``; print the table; return the CSV."""
    course_dir = Path(course_dir).resolve()
    exercise_dir(assignment)
    if not (course_dir / "nbgrader_config.py").is_file():
        write_config(course_dir)
    rows = grade_rows(course_dir, assignment)
    path = write_csv(course_dir, assignment, rows)
    grades = _gradebook_grades(course_dir, assignment, [row["student_id"] for row in rows])
    failures = []
    for row in rows:
        student = row["student_id"]
        pages = (
            []
            if row["status"] == "rejected"
            else _nbgrader_feedback(course_dir, assignment, student, grades.get(student))
        )
        if pages is None:
            failures.append(student)
            pages = []
        _write_summary(course_dir, assignment, row, grades.get(student, []), pages)
    if not rows:
        print(f"No collected submissions of {assignment} yet; run collect, then grade.")
    print(format_table(rows))
    print(f"Wrote {path} ({len(rows)} students) and feedback in {course_dir / 'feedback'}.")
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
        rows.append({**{column: record.get(column) for column in COLUMNS}, **_extras(record)})
    return rows


def _extras(record: dict) -> dict:
    return {"details": record.get("details") or []}


def _cell_text(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        digits = 4 if column == "hidden_accuracy" else 2
        return f"{round(float(value), digits):g}"
    text = " ".join(str(value).split())
    # A spreadsheet would run a cell that starts like a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_csv(course_dir: Path, assignment: str, rows: list[dict]) -> Path:
    """Write ``rows`` (the :data:`COLUMNS` of each) atomically as the grade table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell_text(column, row.get(column)) for column in COLUMNS])
    path = grades_csv(course_dir, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
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


def _gradebook_grades(course_dir: Path, assignment: str, students: list[str]) -> dict:
    """``{student: [grade dict]}`` of the graded cells in nbgrader's gradebook."""
    from nbgrader.api import MissingEntry

    if not (course_dir / "gradebook.db").exists():
        return {}
    found = {}
    with nbgrader_api(course_dir).gradebook as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            found[student] = [
                {
                    "notebook": notebook.name,
                    "name": grade.name,
                    "score": float(grade.score or 0.0),
                    "max_score": float(grade.max_score),
                }
                for notebook in submission.notebooks
                for grade in notebook.grades
                if grade.max_score
            ]
    return found


def _nbgrader_feedback(
    course_dir: Path, assignment: str, student: str, grades: list | None
) -> list[str] | None:
    """Run nbgrader's generate_feedback if there is an autograded notebook; the pages made."""
    notebooks = sorted(autograded_dir(course_dir, assignment, student).glob("*.ipynb"))
    if not notebooks or grades is None:
        return []
    api = nbgrader_api(course_dir, **{"HTMLExporter.sanitize_html": True})
    result = api.generate_feedback(assignment, student, force=True)
    if not result.get("success"):
        return None
    folder = feedback_dir(course_dir, assignment, student)
    return sorted(p.name for p in folder.glob("*.html") if p.name != "summary.html")


def _failure_reasons(course_dir: Path, assignment: str, student: str) -> dict[tuple, str]:
    """``{(notebook, grade_id): reason}`` of failed test cells, from the autograded notebooks.

    The reason is the cell's error (``ErrorName: message``) or, as nbgrader also fails a test
    cell that writes to stderr (a warning, say), the first line it wrote there.
    """
    reasons = {}
    for path in sorted(autograded_dir(course_dir, assignment, student).glob("*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError):
            continue
        for cell in cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            outputs = cell.get("outputs", [])
            errors = [o for o in outputs if o.get("output_type") == "error"]
            stderr = [
                o for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"
            ]
            if not grade_id or not (errors or stderr):
                continue
            if errors:
                error = errors[-1]
                text = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".rstrip(": ")
            else:
                written = "".join(
                    "".join(o["text"]) if isinstance(o.get("text"), list) else str(o.get("text"))
                    for o in stderr
                )
                first = next((line for line in written.splitlines() if line.strip()), "")
                text = f"nbgrader fails a test cell that writes to stderr, and it wrote: {first}"
            text = " ".join(ANSI.sub("", text).split())
            reasons[(path.stem, grade_id)] = text[:MAX_REASON_CHARS]
    return reasons


def lost_points(course_dir: Path, assignment: str, row: dict, grades: list[dict]) -> list[dict]:
    """Every place the student lost points: ``{"item", "score", "max", "reason"}`` dicts."""
    reasons = _failure_reasons(course_dir, assignment, row["student_id"])
    lost = []
    for grade in sorted(grades, key=lambda g: (g["notebook"], g["name"])):
        score, maximum = grade["score"], grade["max_score"]
        if score < maximum:
            reason = reasons.get((grade["notebook"], grade["name"]))
            if reason is None:
                reason = "The test did not pass (partial or no credit)."
            lost.append(
                {
                    "item": f"{grade['notebook']}: {grade['name']}",
                    "score": score,
                    "max": maximum,
                    "reason": reason,
                }
            )
    shown = {entry["item"] for entry in lost}
    for entry in row.get("details") or []:
        if entry.get("item") not in shown and (entry.get("score") or 0) < (entry.get("max") or 0):
            lost.append(entry)
            shown.add(entry.get("item"))
    hidden_max, hidden_score = row.get("hidden_max") or 0, row.get("hidden_score") or 0
    if hidden_score < hidden_max and not any("hidden" in str(e.get("item")) for e in lost):
        accuracy = row.get("hidden_accuracy")
        reason = (
            f"The accuracy on the hidden test set, {accuracy:.1%}, is below the pass mark of "
            f"{HIDDEN_PASS_ACCURACY:.0%}."
            if accuracy is not None
            else row.get("message") or "The hidden-accuracy check did not run."
        )
        lost.append(
            {
                "item": "hidden accuracy check",
                "score": hidden_score,
                "max": hidden_max,
                "reason": reason,
            }
        )
    return lost


def _write_summary(
    course_dir: Path, assignment: str, row: dict, grades: list[dict], pages: list[str]
) -> Path:
    folder = feedback_dir(course_dir, assignment, row["student_id"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "summary.html"
    tmp = path.with_name(f".summary.{os.getpid()}.tmp")
    tmp.write_text(summary_html(course_dir, assignment, row, grades, pages), encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary_html(
    course_dir: Path, assignment: str, row: dict, grades: list[dict], pages: list[str]
) -> str:
    """The trusted summary page of one student (every value HTML-escaped)."""

    def e(value: object) -> str:
        return html.escape(_cell_text("", value) or "-")

    accuracy = row.get("hidden_accuracy")
    facts = [
        ("Status", e(row.get("status"))),
        ("Tests (nbgrader)", f"{e(row.get('tests_score'))} / {e(row.get('tests_max'))} points"),
        ("Hidden test accuracy", "-" if accuracy is None else f"{accuracy:.2%}"),
        (
            "Hidden accuracy points",
            f"{e(row.get('hidden_score'))} / {e(row.get('hidden_max'))} "
            f"(all if the accuracy is at least {HIDDEN_PASS_ACCURACY:.0%})",
        ),
        ("Total", f"<strong>{e(row.get('total'))} / {e(row.get('total_max'))}</strong>"),
    ]
    lost = lost_points(course_dir, assignment, row, grades)
    lost_rows = "".join(
        f"<tr><td>{html.escape(str(x.get('item')))}</td><td>{e(x.get('score'))} / "
        f"{e(x.get('max'))}</td><td>{html.escape(str(x.get('reason')))}</td></tr>"
        for x in lost
    )
    links = "".join(
        f'<li><a href="{html.escape(page, quote=True)}">{html.escape(page)}</a></li>'
        for page in pages
    )
    notes = _collect_notes(course_dir, assignment, row["student_id"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(assignment)}: feedback for {html.escape(row['student_id'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:left;vertical-align:top}.message{background:#f4f4f4;padding:.6em}</style>",
        "</head><body>",
        f"<h1>{html.escape(assignment)}: {html.escape(row['student_id'])}</h1>",
        "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>",
    ]
    if row.get("message"):
        parts.append(f'<p class="message">{html.escape(str(row["message"]))}</p>')
    if lost:
        parts += [
            "<h2>Where points were lost</h2>",
            "<table><tr><th>What</th><th>Points</th><th>Why</th></tr>" + lost_rows + "</table>",
        ]
    elif row.get("status") == "graded":
        parts.append("<p>Full marks: no points were lost.</p>")
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    if links:
        parts += ["<h2>Your notebook, as graded</h2>", f"<ul>{links}</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


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
