"""OpenID Connect Back-Channel Logout 1.0: the identity provider tells us a session ended.

Every validation step of the spec's section 2.6, in order, each with its own error
description (``revoker.tokens.signals.logout_token``): the token is a signed JWT from a
trusted issuer (``REVOKER_OIDC_ISSUERS``, that issuer's JWKS, read again at once for a
kid not seen yet), ``aud`` names one of ``REVOKER_OIDC_AUDIENCE``, ``iat`` is present and
recent (``REVOKER_OIDC_MAX_AGE``, and never older than the max token lifetime), ``exp``
(when present) has not passed, ``sub`` and/or ``sid`` are present, ``events`` holds the
back-channel-logout member with an object value, there is no ``nonce``, and its ``jti``
was never accepted before (it is remembered in the store for as long as the token could
still be accepted).

Then, as the spec reads it: a ``sid`` means "this session ended", so only that session
is revoked even when a ``sub`` is present too; a token with only a ``sub`` logs the user
out everywhere, with cutoff = the token's ``iat`` + 1 (every token of that user issued
up to the logout, including earlier in the same second).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from revoker.errors import TokenError
from revoker.model import RevokeRequest
from revoker.tokens import LogoutToken, cutoff_after, logout_token
from revoker.web.idp import TRUSTED, ensure, issuer_tag
from revoker.web.schemas import FORM, JSON, PUBLIC, problems, ref
from revoker.web.spec import Body, Operation, Reply, declare
from revoker.web.state import SERVICE

routes = web.RouteTableDef()
FORM_TYPE: Final = "application/x-www-form-urlencoded"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REASON: Final = "back-channel logout"
BACKCHANNEL: Final = Operation(
    "OpenID Connect Back-Channel Logout 1.0", "logout", PUBLIC,
    (Reply(200, "the session (or the subject) is revoked"),
     Reply(400, "invalid_request, with the failed validation step", JSON, ref("OAuthError")),
     *problems(413, 503)),
    bodies=(Body(FORM, {"type": "object", "required": ["logout_token"],
                        "properties": {"logout_token": {"type": "string"}}}),),
    description="The logout token is validated as the specification requires, from a "
                "trusted issuer.")


def setup(app: web.Application) -> None:
    ensure(app)


def revocations(token: LogoutToken, *, now: float) -> list[RevokeRequest]:
    if token.sid is not None:
        return [RevokeRequest(kind="sid", value=token.sid, reason=REASON)]
    if token.sub is None:  # the claim rules refuse a token with neither
        return []
    return [RevokeRequest(kind="sub", value=token.sub,
                          issued_before=cutoff_after(token.iat, now=now), reason=REASON)]


def refuse(description: str) -> web.Response:
    """Section 2.8: 400 with an OAuth-style error body, never cached."""
    return web.json_response({"error": "invalid_request", "error_description": description},
                             status=400, headers=NO_STORE)


@routes.post("/oidc/backchannel-logout")
@declare(BACKCHANNEL)
async def backchannel_logout(request: web.Request) -> web.Response:
    if request.content_type != FORM_TYPE:
        return refuse(f"the body must be {FORM_TYPE}")
    form = await request.post()
    token = form.get("logout_token")
    if not isinstance(token, str) or not token:
        return refuse("the form field 'logout_token' is required")
    service, trusted = request.app[SERVICE], request.app[TRUSTED]
    try:
        verified = await trusted.verify(token)
        now = service.clock()
        logout = logout_token(verified.header, verified.payload, rules=trusted.rules, now=now)
    except TokenError as exc:
        return refuse(exc.reason)
    # Revoke first, remember the jti second: if the store fails in between, the identity
    # provider's retry of the same token still revokes (revoking is idempotent), instead
    # of being refused as a replay while the revocation was never made.
    await service.revoke_many(revocations(logout, now=now), actor=_actor(logout.issuer),
                              source="backchannel")
    if not await service.remember_once("bcl", issuer_tag(logout.issuer), logout.jti,
                                       logout.acceptable_until):
        return refuse("logout token already used (jti replayed)")
    return web.Response(status=200, headers=NO_STORE)


def _actor(issuer: str) -> str:
    return "backchannel:" + issuer[:200]
