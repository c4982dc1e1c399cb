"""OAuth 2.0 Token Introspection (RFC 7662): the same validation and revocation checks as
``/v1/authz``, answered as JSON for resource servers that prefer asking to forwarding.

Anything not acceptable is ``{"active": false}`` and nothing else, so the answer never
says why a token failed (RFC 7662 section 2.2). When revocation state is unknown the answer
is a 503 (even in fail mode ``open``): introspection must never call a token active
without having checked it.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from revoker.errors import StoreUnavailable, TokenError, Unauthenticated
from revoker.web.auth import oauth_client, require
from revoker.web.authz import validate_and_check
from revoker.web.jsonio import respond
from revoker.web.problem import problem
from revoker.web.schemas import FORM, OAUTH_CLIENT, json_reply, problem_reply, problems, ref
from revoker.web.spec import Body, Operation, declare
from revoker.web.state import VALIDATOR

routes = web.RouteTableDef()
FORM_TYPE: Final = "application/x-www-form-urlencoded"
#: RFC 7662 section 2.2 members copied from the token when present.
STANDARD_CLAIMS: Final = ("scope", "client_id", "username", "exp", "iat", "nbf", "sub", "aud",
                          "iss", "jti")
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_OAUTH_PROBLEM: Final = {"allOf": [ref("Problem"), {
    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}]}
INTROSPECT: Final = Operation(
    "RFC 7662 token introspection", "gateway", OAUTH_CLIENT,
    (json_reply(200, "active with the token's standard claims, or inactive", {
        "type": "object", "required": ["active"],
        "properties": {"active": {"type": "boolean"}, "token_type": {"const": "Bearer"}}}),
     problem_reply(400, "invalid_request: no token", schema=_OAUTH_PROBLEM),
     problem_reply(401, "invalid_client, or a missing or invalid API key"),
     problem_reply(415, "invalid_request: not a form", schema=_OAUTH_PROBLEM),
     *problems(403, 413, 503)),
    bodies=(Body(FORM, {"type": "object", "required": ["token"],
                        "properties": {"token": {"type": "string"},
                                       "token_type_hint": {"type": "string"}}}),))


def _authenticate(request: web.Request) -> web.Response | None:
    """A configured OAuth client (HTTP Basic) or an API key with ``check``.

    Bad client credentials get RFC 6749 section 5.2 ``invalid_client``; API key failures
    fall through to the usual problem+json 401/403.
    """
    try:
        if oauth_client(request) is not None:
            return None
    except Unauthenticated as exc:
        return problem(401, str(exc), error="invalid_client",
                       headers={"WWW-Authenticate": 'Basic realm="revoker"', **NO_STORE})
    require(request, "check")
    return None


@routes.post("/oauth2/introspect")
@declare(INTROSPECT)
async def introspect(request: web.Request) -> web.Response:
    refused = _authenticate(request)
    if refused is not None:
        return refused
    if request.content_type != FORM_TYPE:
        return problem(415, f"the body must be {FORM_TYPE}", error="invalid_request")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token:
        return problem(400, "the form field 'token' is required", error="invalid_request")
    try:
        # A kid not seen yet waits for the keys to be read again (a resource server asks
        # once); the check below then finds the token in the verified cache.
        await request.app[VALIDATOR].validate_waiting(token)
        verified, degraded = await validate_and_check(request, token)
    except TokenError:
        return respond({"active": False}, headers=NO_STORE)
    if degraded:
        raise StoreUnavailable("revocation state is unknown; not answering active")
    return respond(active_body(verified.payload), headers=NO_STORE)


def active_body(payload: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in STANDARD_CLAIMS:
        if name in payload and _json_safe(payload[name]):
            body[name] = payload[name]
    if "client_id" not in body and isinstance(payload.get("azp"), str) \
            and _json_safe(payload["azp"]):
        body["client_id"] = payload["azp"]
    return body


def _json_safe(value: Any, depth: int = 0) -> bool:
    """Whether a claim can be echoed as JSON: a lone surrogate (legal in a JSON escape,
    not in UTF-8) or a deep structure would otherwise turn an answer into a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if value is None or isinstance(value, bool | int | float):
        return not isinstance(value, int) or abs(value) < 2**63
    if isinstance(value, list) and depth < 2:
        return all(_json_safe(item, depth + 1) for item in value)
    return False
