"""The submission service: students upload, the grading engine grades, results on a page and
over a JSON API (DESIGN.md, "The submission service").

- :mod:`.config`: :class:`ServiceConfig`, what ``python -m autograder serve`` was given;
- :mod:`.app`: :func:`create_app`, the ASGI app (FastAPI): middleware (sessions, CSRF, security
  headers), the routers, the engine's dispatcher started and stopped with the app;
- :mod:`.auth`: the current account (``Authorization: Bearer`` or the session cookie), login;
- :mod:`.intake`: an upload streamed to disk with a size cut-off, checked like ``collect``;
- :mod:`.dispatcher`: hands every unfinished upload to the engine (Dask priorities from the
  database) and reads what comes back; takes up what a killed service left;
- :mod:`.views`: the API's JSON of an upload, the queue positions, the upload that counts;
- routers: :mod:`.submissions`, :mod:`.grades`, :mod:`.health`, :mod:`.pages`.

The web process hands work over and reads results: it never imports ``autograder.grading`` or
``autograder.sandbox`` itself and never runs or imports a student's code (an upload is only
checked and unpacked as a zip).
"""

from .app import create_app
from .config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
