"""``GET /healthz``: 200 when the database and the grading engine answer, else 503."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request):
    service = request.app.state.service
    try:
        with service.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    engine = service.dispatcher.healthy()
    body = {"database": database, "engine": engine}
    if not engine and service.dispatcher.error:
        body["error"] = service.dispatcher.error
    return JSONResponse(body, status_code=200 if database and engine else 503)
