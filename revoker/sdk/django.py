"""Django and Django REST framework.

Settings name the guard once per process::

    REVOKER = {"url": "http://revoker:8080", "key": env("REVOKER_CHECK_KEY"),
               "jwks_url": "https://idp.example/jwks.json", "issuer": "...",
               "audience": ["api"], "fail_mode": "closed"}

    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": [
        "revoker.sdk.django.RevokerAuthentication"]}

``RevokerAuthentication`` validates the bearer token and checks the denylist copy
(``request.user`` is a ``TokenUser``, ``request.auth`` the verified claims); an invalid
or revoked token is a 401 with ``WWW-Authenticate: Bearer error="invalid_token"``, an
unknown state with fail mode ``closed`` a 503. For plain Django views, wrap the WSGI
application with ``revoker.sdk.wsgi.RevokerWSGI(get_wsgi_application(), guard())``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from rest_framework import exceptions  # type: ignore[import-untyped]
from rest_framework.authentication import BaseAuthentication  # type: ignore[import-untyped]

from revoker.sdk.guard import Guard, bearer
from revoker.sdk.verify import VerifierSettings
from revoker.sdk.wsgi import OUTCOME_KEY

_GUARD: Guard | None = None
_LOCK = threading.Lock()
VERIFIER_OPTIONS = frozenset(VerifierSettings.__dataclass_fields__)
GUARD_OPTIONS = frozenset({"mode", "fail_mode", "max_staleness_s", "timeout_s", "on_outcome"})


def guard() -> Guard:
    """The process's guard, built from ``settings.REVOKER`` and started on first use."""
    global _GUARD
    with _LOCK:
        if _GUARD is None:
            _GUARD = guard_from(dict(settings.REVOKER)).start(wait=True)
        return _GUARD


def guard_from(options: dict[str, Any]) -> Guard:
    unknown = set(options) - VERIFIER_OPTIONS - GUARD_OPTIONS - {"url", "key"}
    if unknown:
        raise ValueError(f"REVOKER: unknown option(s) {', '.join(sorted(unknown))}")
    verifier = VerifierSettings(**{k: v for k, v in options.items() if k in VERIFIER_OPTIONS})
    return Guard(options["url"], options.get("key"), verifier=verifier,
                 **{k: v for k, v in options.items() if k in GUARD_OPTIONS})


class TokenUser:
    """The caller as its token names it; nothing is read from the database."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.pk = self.id = self.username = claims.get("sub")

    def __str__(self) -> str:
        return str(self.username)


class ServiceUnavailable(exceptions.APIException):  # type: ignore[misc]
    status_code = 503
    default_detail = "revocation state unknown"
    default_code = "revocation_state_unknown"


class RevokerAuthentication(BaseAuthentication):  # type: ignore[misc]
    """No ``Authorization: Bearer``: not this authenticator's request (None)."""

    def authenticate(self, request: Any) -> tuple[TokenUser, dict[str, Any]] | None:
        decided = request.META.get(OUTCOME_KEY)  # already decided by RevokerWSGI
        if decided is None:
            token = bearer(request.META.get("HTTP_AUTHORIZATION"))
            if token is None:
                return None
            decided = guard().authenticate(token)
        if decided.status == "refused":
            raise exceptions.AuthenticationFailed(decided.reason)
        if decided.status == "unavailable":
            raise ServiceUnavailable(decided.reason)
        claims = dict(decided.claims)
        return TokenUser(claims), claims

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer error="invalid_token"'
