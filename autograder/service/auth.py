"""Who is calling: :func:`api_account` (the API) and :func:`page_account` (the pages).

A token arrives as ``Authorization: Bearer TOKEN`` (the API) or once through the login form;
the form's login puts the account's id and token generation into the signed session cookie, so
a reissued token ends the sessions made with the old one. Tokens never appear in a URL (the
access log shows paths only) and are never logged.

Another login (JupyterHub OAuth, an LTI launch from the LMS) would plug in here: a route that
verifies that identity and puts the matching account into the session, as :func:`login` does.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature

from ..store.accounts import AccountView


class Unauthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, "Log in: send your token as 'Authorization: Bearer TOKEN'.")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_account(request: Request) -> AccountView | None:
    """The caller's account, or None."""
    service = request.app.state.service
    token = _bearer(request)
    if token is not None:
        return service.accounts.verify(token)
    session = request.scope.get("session") or {}
    account_id, generation = session.get("account"), session.get("generation")
    if not isinstance(account_id, int):
        return None
    account = service.accounts.get(account_id)
    if account is None or account.generation != generation:
        session.clear()
        return None
    return account


def api_account(request: Request) -> AccountView:
    """FastAPI dependency of the API: the account, else 401."""
    account = current_account(request)
    if account is None:
        raise Unauthenticated()
    return account


def check_upload_csrf(request: Request) -> bool:
    """An upload made with the session cookie carries the CSRF token as ``X-CSRFToken``, equal
    to the signed ``csrftoken`` cookie (asgi-csrf's double submit); a bearer upload needs none."""
    if _bearer(request) is not None:
        return True
    header = request.headers.get("x-csrftoken", "")
    cookie = request.cookies.get("csrftoken", "")
    if not header or not hmac.compare_digest(header.encode(), cookie.encode()):
        return False
    try:
        request.app.state.csrf_signer.loads(cookie, "csrftoken")
    except BadSignature:
        return False
    return True


def login(request: Request, token: str) -> AccountView | None:
    """Check ``token``; on success the session holds its account (a new session)."""
    account = request.app.state.service.accounts.verify(token)
    request.session.clear()
    if account is not None:
        request.session.update({"account": account.id, "generation": account.generation})
    return account


Caller = Annotated[AccountView, Depends(api_account)]
"""A route's parameter for the calling account (401 without one)."""
