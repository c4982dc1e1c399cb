"""A FastAPI dependency that hands the verified claims to the handler:

    require_token = RevokerBearer(guard)

    @app.get("/me")
    async def me(claims: dict = Depends(require_token)) -> dict: ...

Behind ``RevokerMiddleware`` it reuses the middleware's decision; alone, it decides itself
(invalid or revoked: 401 with ``WWW-Authenticate: Bearer error="invalid_token"``; state
unknown with fail mode ``closed``: 503).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from revoker.sdk.asgi import CLAIMS_KEY
from revoker.sdk.guard import DEGRADED_HEADER, Guard, bearer
from revoker.sdk.responses import refusal


class RevokerBearer:
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def __call__(self, request: Request, response: Response) -> dict[str, Any]:
        claims = request.scope.get("state", {}).get(CLAIMS_KEY)
        if claims is not None:
            return dict(claims)
        outcome = await self.guard.authenticate_async(
            bearer(request.headers.get("authorization")))
        if not outcome.ok:
            status, headers, _ = refusal(outcome)
            raise HTTPException(status, detail=outcome.reason,
                                headers={k: v for k, v in headers if k != "Content-Type"})
        if outcome.degraded:
            response.headers[DEGRADED_HEADER] = "fail-open"
        return dict(outcome.claims)
