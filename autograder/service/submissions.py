"""The uploads' routes: ``POST /api/submissions``, ``GET /api/submissions`` and
``GET /api/submissions/{id}`` (DESIGN.md's contract)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..collect import Rejected, unpack_zip
from ..core.text import clean_text
from ..store.accounts import AccountView
from .auth import Caller, check_upload_csrf
from .intake import Refused, receive_upload
from .views import counted, positions, submission_json

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
    if config.deadline_passed():
        return _error(
            403,
            f"The deadline ({config.deadline:%Y-%m-%d %H:%M} UTC) has passed; uploads are closed "
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
    """Check and unpack the zip, store it and its rows; the 202 (or the refusal)."""
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
            os.replace(received.path, target)
            _fsync_folder(target.parent)
        row = service.store.enqueue(
            account.assignment, account.student_id, received.sha256, spec.grader_version
        )
        folder = paths.submission(row.id)
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                (staging / "s").rename(folder)
            except OSError:  # unpacked by a concurrent upload of the same zip
                pass
        view = service.uploads.add(
            account.assignment,
            account.student_id,
            row.id,
            received.sha256,
            received.size,
            received.file_name,
            _today(),
            service.config.daily_cap,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if view is None:
        return _error(429, cap_message)
    service.dispatcher.wake()
    return JSONResponse({"id": view.id, "status": "queued"}, status_code=202)


def _fsync_folder(folder) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _json(service, view, own) -> dict:
    config = service.config
    place = None
    if not view.grading.state.final:
        place = positions(service.uploads.unfinished()).get(view.grading.id)
    best = counted(own, config.counting(view.assignment)).get(view.student_id)
    return submission_json(
        view, place, best is not None and best.id == view.id, not config.deadline_passed()
    )


@router.get("/api/submissions")
def list_submissions(request: Request, account: Caller):
    service = request.app.state.service
    views = service.uploads.of_student(account.student_id, account.assignment)
    queue = (
        positions(service.uploads.unfinished())
        if any(not v.grading.state.final for v in views)
        else {}
    )
    config = service.config
    best = counted(views, config.counting(account.assignment)).get(account.student_id)
    before = not config.deadline_passed()
    return [
        submission_json(v, queue.get(v.grading.id), best is not None and best.id == v.id, before)
        for v in views
    ]


@router.get("/api/submissions/{upload_id}")
def get_submission(upload_id: str, request: Request, account: Caller):
    service = request.app.state.service
    view = service.uploads.get(upload_id)
    mine = view is not None and view.student_id == account.student_id and not account.instructor
    if view is None or view.assignment != account.assignment or not (mine or account.instructor):
        return _error(404, "There is no upload of yours with this id.")
    own = service.uploads.of_student(view.student_id, view.assignment)
    return _json(service, view, own)
