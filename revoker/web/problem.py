"""RFC 9457 problem details: the one shape of every error this service returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from revoker.errors import InvalidInput, TooLarge
from revoker.web.jsonio import dumps

CONTENT_TYPE = "application/problem+json"
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_S: Final = "1"
#: The detail of every 503 caused by the store: generic on purpose (see ``unavailable``).
UNAVAILABLE: Final = "revocation state is unavailable; retry later"
NOT_DURABLE: Final = "the change was not confirmed by enough replicas; retry later"


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None,
            **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return web.Response(body=dumps(body), status=status, content_type=CONTENT_TYPE,
                        headers=headers)


def problem_dict(status: int, detail: str) -> dict[str, Any]:
    """The same members, for one failed item of a batch."""
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail}


def item_problem(exc: InvalidInput) -> dict[str, Any]:
    """A batch item's own error: 413 for an oversize token, else 400."""
    return problem_dict(413 if isinstance(exc, TooLarge) else 400, str(exc))


def unavailable(detail: str = UNAVAILABLE) -> web.Response:
    """503 with ``Retry-After``. The detail is one of the generic constants above, never the
    store's own error: forward-auth gateways pass this answer through to end users."""
    return problem(503, detail, headers={"Retry-After": RETRY_AFTER_S})
