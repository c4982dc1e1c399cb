"""OpenID Connect Back-Channel Logout 1.0: the identity provider tells us a session ended.

Every validation step of the spec's section 2.6, in order, each with its own error
description: the token is a signed JWT from a trusted issuer (``REVOKER_OIDC_ISSUERS``,
that issuer's JWKS), ``aud`` names one of ``REVOKER_OIDC_AUDIENCE``, ``iat`` is present
and recent (``REVOKER_OIDC_MAX_AGE``), ``exp`` (when present) has not passed, ``sub``
and/or ``sid`` are present, ``events`` holds the back-channel-logout member with an
object value, there is no ``nonce``, and its ``jti`` was never accepted before (it is
remembered in the store for as long as the token could still be accepted).

Then, as the service contract says, the ``sid`` and/or the ``sub`` it carries are revoked:
the ``sid`` for that session's tokens of any age, the ``sub`` with cutoff = the token's
``iat`` (every token of that user issued before the logout). The contract is followed
literally even though the spec reads a token with both claims as "this session only";
the closing note of the issue records that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from revoker.errors import TokenError
from revoker.model import RevokeRequest, is_valid_value
from revoker.web.idp import TRUSTED, TrustedIssuers, ensure, issuer_tag, number
from revoker.web.state import SERVICE, STORE

routes = web.RouteTableDef()
FORM_TYPE: Final = "application/x-www-form-urlencoded"
LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
ACCEPTED_TYP: Final = frozenset({"logout+jwt", "application/logout+jwt", "jwt"})
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def setup(app: web.Application) -> None:
    ensure(app)


@dataclass(frozen=True, slots=True)
class LogoutToken:
    issuer: str
    jti: str
    iat: int
    sub: str | None
    sid: str | None
    #: until when a replay could still pass validation (so the jti must be remembered)
    acceptable_until: int


def check_logout_claims(header: dict[str, Any], payload: dict[str, Any], *,
                        trusted: TrustedIssuers, now: float) -> LogoutToken:
    """Section 2.6 steps 3-6 (the signature, step 2, is checked before). TokenError."""
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP):
        raise TokenError("typ is not logout+jwt")
    if not trusted.audience_ok(payload.get("aud")):
        raise TokenError("wrong audience")
    iat = number(payload, "iat")
    if iat is None:
        raise TokenError("missing claim: iat")
    if iat > now + trusted.leeway_s:
        raise TokenError("issued in the future")
    if iat < now - trusted.max_age_s - trusted.leeway_s:
        raise TokenError("issued too long ago")
    exp = number(payload, "exp")
    if exp is not None and exp <= now - trusted.leeway_s:
        raise TokenError("expired")
    jti = payload.get("jti")
    if jti is None:
        raise TokenError("missing claim: jti")
    sub, sid = _identifier(payload, "sub"), _identifier(payload, "sid")
    if not isinstance(jti, str) or not is_valid_value(jti):
        raise TokenError("malformed token")
    if sub is None and sid is None:
        raise TokenError("neither sub nor sid")
    events = payload.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise TokenError("events lacks the back-channel logout event")
    if "nonce" in payload:
        raise TokenError("nonce is not allowed")
    until = iat + trusted.max_age_s + trusted.leeway_s
    if exp is not None:
        until = min(until, exp + trusted.leeway_s)
    return LogoutToken(issuer=str(payload["iss"]), jti=jti, iat=int(iat), sub=sub, sid=sid,
                       acceptable_until=int(until) + 1)


def _identifier(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not is_valid_value(value):
        raise TokenError("malformed token")
    return value


def revocations(token: LogoutToken, *, now: float) -> list[RevokeRequest]:
    cutoff = min(token.iat, int(now))
    out = []
    if token.sid is not None:
        out.append(RevokeRequest(kind="sid", value=token.sid, reason="back-channel logout"))
    if token.sub is not None:
        out.append(RevokeRequest(kind="sub", value=token.sub, issued_before=cutoff,
                                 reason="back-channel logout"))
    return out


def refuse(description: str) -> web.Response:
    """Section 2.8: 400 with an OAuth-style error body, never cached."""
    return web.json_response({"error": "invalid_request", "error_description": description},
                             status=400, headers=NO_STORE)


@routes.post("/oidc/backchannel-logout")
async def backchannel_logout(request: web.Request) -> web.Response:
    if request.content_type != FORM_TYPE:
        return refuse(f"the body must be {FORM_TYPE}")
    form = await request.post()
    token = form.get("logout_token")
    if not isinstance(token, str) or not token:
        return refuse("the form field 'logout_token' is required")
    service = request.app[SERVICE]
    now = service.clock()
    try:
        verified = request.app[TRUSTED].verify(token)
        logout = check_logout_claims(verified.header, verified.payload,
                                     trusted=request.app[TRUSTED], now=now)
    except TokenError as exc:
        return refuse(exc.reason)
    # Revoke first, remember the jti second: if the store fails in between, the identity
    # provider's retry of the same token still revokes (revoking is idempotent), instead
    # of being refused as a replay while the revocation was never made.
    await service.revoke_many(revocations(logout, now=now), actor=_actor(logout.issuer),
                              source="backchannel")
    replay_key = f"bcl:{issuer_tag(logout.issuer)}:{logout.jti}"
    if not await request.app[STORE].remember_once(replay_key, logout.acceptable_until):
        return refuse("logout token already used (jti replayed)")
    return web.Response(status=200, headers=NO_STORE)


def _actor(issuer: str) -> str:
    return "backchannel:" + issuer[:200]
