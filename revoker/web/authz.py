"""Forward-auth for gateways: nginx ``auth_request``, Envoy ``ext_authz``, Traefik ForwardAuth.

One handler serves every method on ``/v1/authz`` and ``/v1/authz/{tail}`` (Envoy appends the
original path, nginx always sends GET). The gateway authenticates with ``X-Revoker-Key``
because ``Authorization`` carries the user's token. This path is hot: a repeated token
costs one digest, one dict lookup and one revocation lookup.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import hdrs, web

from revoker import metrics
from revoker.errors import TokenError
from revoker.service import Revoker
from revoker.tokens import TokenValidator, Verified
from revoker.web.auth import authorize
from revoker.web.problem import CONTENT_TYPE as PROBLEM
from revoker.web.problem import problem
from revoker.web.schemas import GATEWAY, HEADER_TEXT, problems, ref
from revoker.web.spec import Operation, Param, Reply, declare
from revoker.web.state import KEYRING, SERVICE, SETTINGS, VALIDATOR

routes = web.RouteTableDef()
ROUTE: Final = "/v1/authz"
TAIL_ROUTE: Final = "/v1/authz/{tail:.*}"
#: Every method: a gateway forwards the original request's (Envoy), or its own choice.
#: The fast lane takes the methods the routes are registered with, so this is the one list.
METHODS: Final = hdrs.METH_ANY
DEGRADED_HEADER: Final = "X-Revoker-Degraded"
MAX_HEADER_VALUE: Final = 1024
#: Printable, no control characters (no header injection), no lone surrogates (not UTF-8).
_SAFE_VALUE: Final = re.compile(r"^[\x20-\x7e\u00a0-\ud7ff\ue000-\U0010ffff]*$")


#: Resolved once: ``labels()`` costs more than the count (a revoked token is common in
#: an incident).
_REJECTED_REVOKED: Final = metrics.fast_counter(metrics.TOKEN_REJECTIONS.labels(reason="revoked"))


def setup(app: web.Application) -> None:
    """The validator lives in app state; its JWKS refresher starts and stops with the app."""
    app[VALIDATOR] = TokenValidator.from_settings(app[SETTINGS])
    app.cleanup_ctx.append(_validator_lifecycle)


async def _validator_lifecycle(app: web.Application) -> AsyncIterator[None]:
    validator = app[VALIDATOR]
    await validator.start()
    try:
        yield
    finally:
        await validator.stop()


def bearer_token(request: web.BaseRequest) -> str:
    """The user's token from ``Authorization: Bearer``; raises ``TokenError``."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError("missing token")
    token = value.strip()
    if not token:
        raise TokenError("missing token")
    return token


def challenge(reason: str) -> str:
    """RFC 6750 section 3: the reason only, never the token."""
    return f'Bearer realm="revoker", error="invalid_token", error_description="{reason}"'


def refuse(reason: str) -> web.Response:
    return problem(401, reason, headers={"WWW-Authenticate": challenge(reason),
                                         "Cache-Control": "no-store"})


async def validate_and_check(request: web.Request, token: str) -> tuple[Verified, bool]:
    """Validate, then check every revocation kind. Returns (verified, degraded); raises
    ``TokenError`` (including "revoked") or ``StoreError`` (fail mode closed)."""
    return await _validate_and_check(request.app[VALIDATOR], request.app[SERVICE], token)


async def _validate_and_check(validator: TokenValidator, service: Revoker,
                              token: str) -> tuple[Verified, bool]:
    verified = await validator.validate_waiting(token)  # a rotated key is fetched first
    result = await service.check(verified.claims, details=False)  # the verdict only
    if result.revoked:
        _REJECTED_REVOKED.inc()
        raise TokenError("revoked")
    return verified, result.degraded


AUTHZ: Final = Operation(
    "Forward-auth for nginx, Envoy and Traefik: validate the user's token and check it",
    "gateway", GATEWAY,
    (Reply(200, "the token is valid and not revoked; configured claim headers too",
           headers={"X-Auth-Subject": HEADER_TEXT, "X-Auth-Jti": HEADER_TEXT}),
     Reply(401, "missing, invalid, expired or revoked token (or a missing or invalid key)",
           PROBLEM, ref("Problem"), {"WWW-Authenticate": HEADER_TEXT}),
     *problems(403, 503)),
    path=(Param("tail", {"type": "string"}, "the original request's path (Envoy)",
                where="path"),),
    description="The user's token is `Authorization: Bearer <jwt>`. Any query is taken: "
                "it is the original request's.",
    any_query=True)


@routes.route(METHODS, ROUTE)
@routes.route(METHODS, TAIL_ROUTE)
@declare(AUTHZ)
async def authz(request: web.Request) -> web.Response:
    return await answer_authz(request, request.app)


async def answer_authz(request: web.Request, app: web.Application) -> web.Response:
    """All of ``authz``'s work, with the application passed in: the fast lane
    (``revoker.web.fastlane``) reaches it without the router, so without ``request.app``."""
    authorize(request, "check", app[SETTINGS].check_auth, app[KEYRING],
              allow_authorization=False)
    try:
        verified, degraded = await _validate_and_check(app[VALIDATOR], app[SERVICE],
                                                       bearer_token(request))
    except TokenError as exc:
        return refuse(exc.reason)
    answer = success_headers(verified, app[SETTINGS].authz_claim_headers)
    if degraded:
        answer[DEGRADED_HEADER] = "fail-open"
    return web.Response(status=200, headers=answer)


def success_headers(verified: Verified, mappings: tuple[tuple[str, str], ...]
                    ) -> dict[str, str]:
    """Identity headers are always present (empty when the claim is absent), so a gateway
    that copies them always overwrites whatever the client sent under those names."""
    claims = verified.claims
    headers = {"Cache-Control": "no-store", "X-Auth-Subject": claims.sub or "",
               "X-Auth-Jti": claims.jti or ""}
    for claim, header in mappings:
        headers[header] = header_value(verified.payload.get(claim)) or ""
    return headers


def header_value(value: Any) -> str | None:
    """A claim as a header value, or None when it cannot be one safely (no control
    characters, so no header injection; bounded length)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    else:
        return None
    if len(text) > MAX_HEADER_VALUE or not _SAFE_VALUE.match(text):
        return None
    return text
