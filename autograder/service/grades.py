"""``GET /api/grades/{assignment}`` (instructors): the grade table from each student's counted
upload (a student without a graded upload: the newest final one, rejected or error)."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..core.records import COLUMNS
from ..store.accounts import AccountView
from .auth import Caller
from .views import counted, grade_row

router = APIRouter()


def grade_table(service, assignment: str) -> list[dict]:
    """The grade table's rows, by student id."""
    views = service.uploads.all(assignment)
    best = counted(views, service.config.counting(assignment))
    newest_final = {}
    for view in views:
        if view.grading.state.final and view.grading.record:
            newest_final[view.student_id] = view
    rows = []
    for student in sorted(set(best) | set(newest_final)):
        view = best.get(student) or newest_final[student]
        rows.append(grade_row(student, view.grading.record))
    return rows


def _instructor_of(account: AccountView, assignment: str) -> JSONResponse | None:
    if not account.instructor:
        return JSONResponse({"error": "Only instructors see the grade table."}, status_code=403)
    if account.assignment != assignment:
        return JSONResponse(
            {"error": f"Your token is for {account.assignment}, not this assignment."},
            status_code=403,
        )
    return None


def grades_csv_text(rows: list[dict]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, [*COLUMNS, "flags"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return text.getvalue()


@router.get("/api/grades/{assignment}.csv")
def grades_csv(assignment: str, request: Request, account: Caller):
    refused = _instructor_of(account, assignment)
    if refused:
        return refused
    text = grades_csv_text(grade_table(request.app.state.service, assignment))
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{assignment}-service.csv"'},
    )


@router.get("/api/grades/{assignment}")
def grades(assignment: str, request: Request, account: Caller):
    refused = _instructor_of(account, assignment)
    return refused or grade_table(request.app.state.service, assignment)
