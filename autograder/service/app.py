"""The ASGI app: :func:`create_app` (FastAPI) and :func:`serve` (uvicorn).

Middleware, outermost first: :class:`Guard` (a body limit on every route but the upload, and the
security headers: a Content-Security-Policy that allows only the service's own scripts, no
framing, no sniffing), Starlette's ``SessionMiddleware`` (a signed cookie: HttpOnly,
SameSite=Lax, Secure behind https) and asgi-csrf (a double-submit token on every form POST;
the API with ``Authorization: Bearer`` needs none and skips it, a browser cannot forge that
header). The
upload's route is left to :func:`~.auth.check_upload_csrf` (asgi-csrf would read a multipart
body into memory looking for the token; the page sends it as ``X-CSRFToken``).
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2
from asgi_csrf import asgi_csrf_decorator
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous.url_safe import URLSafeSerializer
from starlette.middleware.sessions import SessionMiddleware

from .. import course
from ..core.errors import AutograderError
from ..engine import grading_spec
from ..store import Store
from ..store.accounts import Accounts
from ..store.uploads import Uploads
from . import grades, health, pages, submissions
from .config import ServiceConfig
from .dispatcher import Dispatcher
from .paths import ServicePaths

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
FORM_BODY_BYTES = 64 * 1024
"""Any request body but an upload's: at most this many bytes."""
UPLOAD_PATH = "/api/submissions"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass
class Service:
    """What the routes share (``app.state.service``)."""

    config: ServiceConfig
    store: Store
    accounts: Accounts
    uploads: Uploads
    specs: dict
    paths: ServicePaths
    dispatcher: Dispatcher
    templates: Jinja2Templates


class Guard:
    """Security headers on every answer (a route's own, stricter ones are kept: the feedback
    page's); bodies of routes other than the upload are bounded (413 past
    :data:`FORM_BODY_BYTES`, counted as they stream)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                given = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in given]
                message = {**message, "headers": headers}
            await send(message)

        if scope["path"] == UPLOAD_PATH:
            await self.app(scope, receive, send_with_headers)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > FORM_BODY_BYTES:
            await _json(send_with_headers, 413, "The request is too large.")
            return
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > FORM_BODY_BYTES:
                raise HTTPException(413, "The request is too large.")
            return message

        await self.app(scope, bounded_receive, send_with_headers)


async def _json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _csrf_failed(scope, send, message_id) -> None:
    await _json(
        send,
        403,
        "The form's security token is missing or old (CSRF); reload the page and try again.",
    )


def _csrf_not_needed(scope) -> bool:
    """The upload checks its own token (:func:`~.auth.check_upload_csrf`); a request with
    ``Authorization: Bearer`` is authenticated by that header alone, which a browser never adds
    to a forged request (and asgi-csrf would make and sign a new cookie for every such call)."""
    if scope["path"] == UPLOAD_PATH:
        return True
    for name, value in scope.get("headers") or ():
        if name == b"authorization":  # the first one, as auth._bearer reads it
            scheme, _, token = value.partition(b" ")
            return scheme.lower() == b"bearer" and bool(token.strip())
    return False


class CSRF:
    """asgi-csrf as a Starlette middleware class."""

    def __init__(self, app, **options) -> None:
        self.app = asgi_csrf_decorator(**options)(app)

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def _specs(config: ServiceConfig) -> dict:
    """The grading spec of each released assignment of the course."""
    specs = {}
    for assignment in course.ASSIGNMENTS:
        if not course.source_dir(config.course_dir, assignment).is_dir():
            continue
        try:
            specs[assignment] = grading_spec(config.course_dir, assignment, config.settings)
        except AutograderError as error:
            logger.warning("%s is not served: %s", assignment, error)
    if not specs:
        raise AutograderError(
            f"No assignment of {config.course_dir} can be graded: run `python -m autograder data` "
            "and `python -m autograder release` first."
        )
    return specs


def create_app(config: ServiceConfig) -> FastAPI:
    """The service on ``config``'s course (its engine starts with the app)."""
    config_dir = course.require_course(Path(config.course_dir))
    paths = ServicePaths(config_dir)
    paths.prepare()
    store = Store.for_course(config_dir, config.database)
    specs = _specs(config)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
    )
    templates = Jinja2Templates(env=environment)
    dispatcher = Dispatcher(config, store, specs, paths)
    service = Service(
        config, store, Accounts(store), Uploads(store), specs, paths, dispatcher, templates
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()

    app = FastAPI(
        title="Hand-in",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.state.csrf_signer = URLSafeSerializer(paths.secret_key())

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError):
        return JSONResponse({"error": "The request is not what this route takes."}, status_code=400)

    for module in (submissions, grades, health, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    secret = paths.secret_key()
    app.add_middleware(
        CSRF,
        signing_secret=secret,
        cookie_secure=config.behind_https,
        always_protect={"/login", "/logout", "/leaderboard"},
        skip_if_scope=_csrf_not_needed,
        send_csrf_failed=_csrf_failed,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="handin_session",
        same_site="lax",
        https_only=config.behind_https,
        max_age=14 * 24 * 3600,
    )
    app.add_middleware(Guard)
    return app


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=config.behind_https,
        forwarded_allow_ips="127.0.0.1" if config.behind_https else None,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
