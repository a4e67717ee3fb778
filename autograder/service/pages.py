"""The pages: login, the student's page (upload, live status, result, history, leaderboard),
the instructor's page (counted uploads, the queue and the workers, flagged rows, the CSV).

Pages are Jinja2 templates with autoescape; the student's page updates itself from the JSON API
(``static/app.js`` writes every value as text, never as HTML). Every form POST carries the CSRF
token (asgi-csrf, double-submit cookie); the upload's fetch sends it as ``X-CSRFToken``.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from ..core.records import Status
from ..store.accounts import AccountView
from .auth import Caller, current_account, login
from .grades import grade_table
from .views import counted, positions

router = APIRouter()


def _render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    service = request.app.state.service
    csrf = request.scope.get("csrftoken")
    context.update(request=request, csrftoken=csrf() if csrf else "", config=service.config)
    return service.templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request):
    return _render(request, "login.html", error=None)


@router.post("/login")
def login_form(request: Request, token: str = Form("")):
    account = login(request, token)
    if account is None:
        return _render(
            request,
            "login.html",
            401,
            error="This token is not valid (perhaps a newer one was issued); check the token "
            "your instructor sent you.",
        )
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    account = current_account(request)
    if account is None:
        return RedirectResponse("/login", status_code=303)
    if account.instructor:
        return _instructor_page(request, account)
    service = request.app.state.service
    from .submissions import _today

    used = service.uploads.used(account.assignment, account.student_id, _today())
    return _render(
        request,
        "student.html",
        account=account,
        left=max(service.config.daily_cap - used, 0),
    )


def _instructor_page(request: Request, account: AccountView) -> HTMLResponse:
    service = request.app.state.service
    assignment = account.assignment
    rows = grade_table(service, assignment)
    unfinished = service.uploads.unfinished()
    places = positions(view.queued for view in unfinished)
    queue = [
        {
            "place": places.get(v.grading.id),
            "student_id": v.student_id,
            "state": v.grading.state.value,
            "holder": v.grading.holder or "",
            "since": v.grading.held_since or v.grading.created,
            "tries": v.grading.tries,
            "file_name": v.file_name,
        }
        for v in unfinished
        if v.assignment == assignment
    ]
    queue.sort(key=lambda q: (q["state"] != Status.RUNNING.value, q["place"] or 0))
    every = service.uploads.all(assignment)
    uploads = {}
    for view in every:
        uploads[view.student_id] = uploads.get(view.student_id, 0) + 1
    files = {
        student: view.file_name
        for student, view in counted(every, service.config.counting(assignment)).items()
    }
    return _render(
        request,
        "instructor.html",
        account=account,
        rows=rows,
        uploads=uploads,
        files=files,
        queue=queue,
        workers=service.dispatcher.workers(),
        flagged=[row for row in rows if row.get("flags")],
        engine_error=service.dispatcher.error,
    )


def leaderboard(service, assignment: str, me: AccountView | None) -> list[dict]:
    """Each student's best public accuracy under their pseudonym (those who opted out left
    out), best first; ``you`` marks the caller's row."""
    best: dict[str, float] = {}
    for view in service.uploads.all(assignment):
        record = view.grading.record or {}
        accuracy = record.get("public_accuracy")
        if view.grading.state.final and accuracy is not None:
            best[view.student_id] = max(best.get(view.student_id, 0.0), float(accuracy))
    accounts = {a.student_id: a for a in service.accounts.all(assignment) if a.role == "student"}
    board = [
        {
            "pseudonym": accounts[student].pseudonym,
            "public_accuracy": accuracy,
            "you": me is not None and me.student_id == student,
        }
        for student, accuracy in best.items()
        if student in accounts and accounts[student].on_leaderboard
    ]
    board.sort(key=lambda entry: (-entry["public_accuracy"], entry["pseudonym"]))
    return board


@router.get("/api/leaderboard/{assignment}")
def leaderboard_json(assignment: str, request: Request, account: Caller):
    if assignment != account.assignment:
        return JSONResponse({"error": "Your token is for another assignment."}, status_code=403)
    return leaderboard(request.app.state.service, assignment, account)


@router.post("/leaderboard")
def leaderboard_choice(request: Request, shown: str = Form("1")):
    account = current_account(request)
    if account is None:
        return RedirectResponse("/login", status_code=303)
    request.app.state.service.accounts.set_leaderboard(account.id, shown == "1")
    return RedirectResponse("/", status_code=303)
