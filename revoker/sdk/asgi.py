"""ASGI middleware (Starlette, FastAPI, any ASGI app): refuse requests whose bearer token
is invalid or revoked, before the application sees them.

    app.add_middleware(RevokerMiddleware, guard=guard)          # Starlette / FastAPI
    app = RevokerMiddleware(app, guard=guard)                   # any ASGI app

The verified claims are in ``scope["state"]["token_claims"]`` (``request.state.
token_claims`` in Starlette) and the whole ``Outcome`` in ``scope["state"]["revoker"]``.
A degraded answer (fail mode ``open``) carries ``X-Revoker-Degraded: fail-open``.
Pure ASGI: no framework is imported, and the response is not buffered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from revoker.sdk.guard import DEGRADED_HEADER, Guard, bearer
from revoker.sdk.responses import refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CLAIMS_KEY = "token_claims"
OUTCOME_KEY = "revoker"


class RevokerMiddleware:
    """``exclude``: path prefixes served without a token (health checks, login)."""

    def __init__(self, app: ASGIApp, *, guard: Guard, exclude: Sequence[str] = ()) -> None:
        self.app = app
        self.guard = guard
        self.exclude = tuple(exclude)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exclude and
                                       scope["path"].startswith(self.exclude)):
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = bearer(value.decode("latin-1"))
                break
        outcome = await self.guard.authenticate_async(token)
        if not outcome.ok:
            status, headers, body = refusal(outcome)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode(), v.encode("latin-1"))
                                    for k, v in headers]})
            await send({"type": "http.response.body", "body": body})
            return
        state = scope.setdefault("state", {})
        state[CLAIMS_KEY] = dict(outcome.claims)
        state[OUTCOME_KEY] = outcome
        if not outcome.degraded:
            await self.app(scope, receive, send)
            return

        async def send_degraded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()),
                                      (DEGRADED_HEADER.lower().encode(), b"fail-open")]
            await send(message)

        await self.app(scope, receive, send_degraded)
