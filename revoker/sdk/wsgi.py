"""WSGI middleware (Flask, Django, any WSGI app): refuse requests whose bearer token is
invalid or revoked, before the application sees them. No event loop needed.

    app.wsgi_app = RevokerWSGI(app.wsgi_app, guard)           # Flask
    application = RevokerWSGI(get_wsgi_application(), guard)   # Django (wsgi.py)

The verified claims are in ``environ["revoker.claims"]`` (Flask: ``request.environ``,
Django: ``request.META``) and the ``Outcome`` in ``environ["revoker.outcome"]``; a
degraded answer carries ``X-Revoker-Degraded: fail-open``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any

from revoker.sdk.guard import DEGRADED_HEADER, Guard, bearer
from revoker.sdk.responses import refusal

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
CLAIMS_KEY = "revoker.claims"
OUTCOME_KEY = "revoker.outcome"


class RevokerWSGI:
    """``exclude``: path prefixes served without a token (health checks, login)."""

    def __init__(self, app: WSGIApp, guard: Guard, *, exclude: Sequence[str] = ()) -> None:
        self.app = app
        self.guard = guard
        self.exclude = tuple(exclude)

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if self.exclude and environ.get("PATH_INFO", "").startswith(self.exclude):
            return self.app(environ, start_response)
        outcome = self.guard.authenticate(bearer(environ.get("HTTP_AUTHORIZATION")))
        if not outcome.ok:
            status, headers, body = refusal(outcome)
            start_response(f"{status} {HTTPStatus(status).phrase}",
                           [*headers, ("Content-Length", str(len(body)))])
            return [body]
        environ[CLAIMS_KEY] = dict(outcome.claims)
        environ[OUTCOME_KEY] = outcome
        if not outcome.degraded:
            return self.app(environ, start_response)

        def degraded(status: str, headers: list[tuple[str, str]],
                     exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (DEGRADED_HEADER, "fail-open")],
                                  exc_info)

        return self.app(environ, degraded)
