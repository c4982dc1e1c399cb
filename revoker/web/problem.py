"""RFC 9457 problem details: the one shape of every error this service returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from revoker.errors import InvalidInput, TooLarge
from revoker.web.jsonio import dumps

CONTENT_TYPE = "application/problem+json"


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
