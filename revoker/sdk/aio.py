"""aiohttp middleware: refuse requests whose bearer token is invalid or revoked.

    app = web.Application(middlewares=[revoker_middleware(guard)])

Handlers find the verified claims in ``request[CLAIMS_KEY]`` and the ``Outcome`` in
``request[OUTCOME_KEY]`` (typed ``web.RequestKey``s); a degraded answer carries
``X-Revoker-Degraded: fail-open``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from revoker.sdk.guard import DEGRADED_HEADER, Guard, Outcome, bearer
from revoker.sdk.responses import refusal

CLAIMS_KEY = web.RequestKey("token_claims", dict[str, Any])
OUTCOME_KEY = web.RequestKey("revoker", Outcome)


def revoker_middleware(guard: Guard, *, exclude: Sequence[str] = ()) -> Middleware:
    """``exclude``: path prefixes served without a token (health checks, login)."""
    prefixes = tuple(exclude)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if prefixes and request.path.startswith(prefixes):
            return await handler(request)
        outcome = await guard.authenticate_async(bearer(request.headers.get("Authorization")))
        if not outcome.ok:
            status, headers, body = refusal(outcome)
            return web.Response(status=status, body=body, headers=dict(headers))
        request[CLAIMS_KEY] = dict(outcome.claims)
        request[OUTCOME_KEY] = outcome
        response = await handler(request)
        if outcome.degraded:
            response.headers[DEGRADED_HEADER] = "fail-open"
        return response

    return middleware
