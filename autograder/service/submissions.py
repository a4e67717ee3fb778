"""The uploads' routes: ``POST /api/submissions``, ``GET /api/submissions`` and
``GET /api/submissions/{id}`` (DESIGN.md's contract), and ``GET /api/submissions/{id}/feedback``
(the feedback page). A route that takes an upload's id answers another student's id exactly as
one that does not exist (404, the same body): :func:`_own_upload`.

The status route is polled by every open page: it reads the account, the upload, and then only
what its answer needs (the queue's order while queued, the student's graded uploads once final).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from ..collect import Rejected, unpack_zip
from ..core.records import Status
from ..core.text import clean_text
from ..store.accounts import AccountView
from ..store.uploads import UploadView
from .auth import Caller, api_account, check_upload_csrf
from .feedback import FEEDBACK_HEADERS, feedback_page
from .intake import Refused, receive_upload
from .views import COUNTABLE, counted, hidden_replacements, iso, positions, submission_json

router = APIRouter()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@router.post("/api/submissions", status_code=202)
async def upload(request: Request, account: Caller):
    service = request.app.state.service
    config = service.config
    if not check_upload_csrf(request):
        return _error(
            403,
            "The form's security token is missing or old (CSRF); reload the page and try again.",
        )
    if account.instructor:
        return _error(403, "Instructors do not hand in; log in with a student's token to try.")
    deadline = config.deadline_for(account.assignment)
    if config.deadline_passed(account.assignment):
        return _error(
            403,
            f"The deadline ({deadline:%Y-%m-%d %H:%M} UTC) has passed; uploads are closed "
            "and your counted upload stands.",
        )
    cap_message = (
        f"You have made {config.daily_cap} uploads today, the daily limit; upload again "
        "tomorrow (UTC). Your best upload so far still counts."
    )
    used = await run_in_threadpool(
        service.uploads.used, account.assignment, account.student_id, _today()
    )
    if used >= config.daily_cap:
        return _error(429, cap_message)
    try:
        received = await receive_upload(request, service.paths.incoming, config.max_upload_bytes)
    except Refused as refused:
        return _error(refused.status, refused.message)
    try:
        assignment = received.fields.get("assignment", "").strip()
        if assignment != account.assignment:
            return _error(
                400,
                f"This upload is for {clean_text(assignment, 64)!r}, but your token is for "
                f"{account.assignment}; choose {account.assignment}.",
            )
        return await run_in_threadpool(_accept, service, account, received, cap_message)
    finally:
        received.path.unlink(missing_ok=True)


def _accept(service, account: AccountView, received, cap_message: str):
    """Check and unpack the zip, store it, then its rows in one transaction with the daily
    count (a refusal writes none); the 202 (or the refusal)."""
    paths = service.paths
    spec = service.specs[account.assignment]
    staging = paths.staging_folder()
    try:
        try:
            unpack_zip(received.path, staging / "s", name=received.file_name)
        except Rejected as rejected:
            return _error(400, str(rejected))
        target = paths.upload_zip(received.sha256)
        if not target.exists():
            with open(received.path, "rb") as stream:
                os.fsync(stream.fileno())
            os.replace(received.path, target)
            _fsync_folder(target.parent)
        view = service.uploads.add(
            account.assignment,
            account.student_id,
            received.sha256,
            spec.grader_version,
            received.size,
            received.file_name,
            _today(),
            service.config.daily_cap,
        )
        if view is None:
            return _error(429, cap_message)
        folder = paths.submission(view.grading.id)
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                (staging / "s").rename(folder)
            except OSError:  # unpacked meanwhile (the dispatcher, or the same zip uploaded again)
                pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    service.dispatcher.wake()
    return JSONResponse({"id": view.id, "status": "queued"}, status_code=202)


def _fsync_folder(folder) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _counts(service, view) -> bool:
    """Whether ``view`` is the upload of its student that counts (only a graded one can)."""
    if view.grading.state not in COUNTABLE:
        return False
    own = service.uploads.of_student(view.student_id, view.assignment)
    best = counted(own, service.config.counting(view.assignment)).get(view.student_id)
    return best is not None and best.id == view.id


def _own_upload(service, account: AccountView, upload_id: str) -> UploadView | None:
    """The upload if the caller may see it (their own, or any of their assignment for an
    instructor); None for another student's as for a missing one."""
    view = service.uploads.get(upload_id)
    if view is None or view.assignment != account.assignment:
        return None
    if account.instructor or view.student_id == account.student_id:
        return view
    return None


NOT_YOURS = "There is no upload of yours with this id."


@router.get("/api/submissions")
def list_submissions(request: Request, account: Caller):
    service = request.app.state.service
    config = service.config
    views = service.uploads.of_student(account.student_id, account.assignment)
    queue = (
        positions(service.uploads.queue())
        if any(v.grading.state is Status.QUEUED for v in views)
        else {}
    )
    best = counted(views, config.counting(account.assignment)).get(account.student_id)
    before = not config.deadline_passed(account.assignment)
    return [
        submission_json(
            v,
            queue.get(v.grading.id),
            best is not None and best.id == v.id,
            before,
            v.grading.state.final and service.paths.has_feedback(v.grading.id),
        )
        for v in views
    ]


@router.get("/api/submissions/{upload_id}")
async def get_submission(upload_id: str, request: Request):
    """The status route: the account and the upload are read in one worker thread (a sync
    dependency would cost a second hop between the event loop and the thread pool per poll)."""
    return await run_in_threadpool(_submission_answer, request, upload_id)


def _submission_answer(request: Request, upload_id: str):
    account = api_account(request)
    service = request.app.state.service
    view = _own_upload(service, account, upload_id)
    if view is None:
        return _error(404, NOT_YOURS)
    place = None
    if view.grading.state is Status.QUEUED:
        place = positions(service.uploads.queue()).get(view.grading.id)
    return submission_json(
        view,
        place,
        _counts(service, view),
        not service.config.deadline_passed(view.assignment),
        view.grading.state.final and service.paths.has_feedback(view.grading.id),
    )


@router.get("/api/submissions/{upload_id}/feedback")
def get_feedback(upload_id: str, request: Request, account: Caller):
    """The upload's feedback page (HTML), served so that no script runs in it."""
    service = request.app.state.service
    view = _own_upload(service, account, upload_id)
    if view is None:
        return _error(404, NOT_YOURS)
    page = None
    if view.grading.state.final:
        before = not service.config.deadline_passed(view.assignment)
        page = feedback_page(
            service.templates.env,
            service.paths.feedback(view.grading.id),
            f"{view.assignment}, graded {iso(view.grading.finished)}",
            hidden_replacements(view.grading.record or {}, view.assignment, before),
            service.paths.feedback_page(view.grading.id, before),
        )
    if page is None:
        return _error(
            404,
            "This upload has no feedback page (yet): it appears once the upload is graded, "
            "if its notebook could be run.",
        )
    return HTMLResponse(page, headers=FEEDBACK_HEADERS)
