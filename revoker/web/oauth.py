"""OAuth 2.0 Token Revocation (RFC 7009): ``POST /oauth2/revoke``.

What the RFC asks, and how it is done here:
- form-encoded ``token`` (required: 400 ``invalid_request`` without it) and optional
  ``token_type_hint``, which may be ignored (2.1): every token here is a JWT, looked up
  the same way whatever the hint; an unknown hint is not an error.
- client authentication (2.1): HTTP Basic as a configured OAuth client
  (``REVOKER_OAUTH_CLIENTS``), or an API key with ``revoke``; failure is 401
  ``invalid_client`` with ``WWW-Authenticate: Basic`` (RFC 6749 5.2).
- the token must have been issued to the client (2.1): its ``client_id`` (else ``azp``)
  must be the client's id (an API key's name counts as its client id); a key with
  ``admin`` may revoke any token, as Keycloak lets its admin do. Otherwise 400
  ``unauthorized_client``.
- 200 for a revoked token and equally for an invalid, unknown or expired one (2.2): the
  client cannot act on the difference. Only tokens with a valid signature are revoked,
  so nobody can revoke someone else's ``jti`` by forging a token that names it.
- a refresh token (``typ`` ``Refresh`` as Keycloak issues them, or hinted
  ``refresh_token``) that carries a ``sid`` also revokes that session, so the access
  tokens obtained with it stop too (2.1: "SHOULD also invalidate all access tokens").
- 503 with ``Retry-After`` when the store cannot record it (2.2.1).
"""

from __future__ import annotations

import logging
import math
from typing import Final

from aiohttp import web

from revoker.errors import Forbidden, TokenError, Unauthenticated
from revoker.model import RevokeRequest
from revoker.tokens import Verified
from revoker.web.auth import oauth_client, require
from revoker.web.schemas import FORM, HEADER_TEXT, JSON, OAUTH_CLIENT, problems, ref
from revoker.web.spec import Body, Operation, Reply, declare
from revoker.web.state import SERVICE, VALIDATOR

routes = web.RouteTableDef()
log = logging.getLogger(__name__)
FORM_TYPE: Final = "application/x-www-form-urlencoded"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REVOKE: Final = Operation(
    "RFC 7009 token revocation", "logout", OAUTH_CLIENT,
    (Reply(200, "revoked, or nothing to revoke (an invalid, unknown or expired token)"),
     Reply(400, "invalid_request (no token, not a form) or unauthorized_client (another "
                "client's token)", JSON, ref("OAuthError")),
     Reply(401, "invalid_client", JSON, ref("OAuthError"), {"WWW-Authenticate": HEADER_TEXT}),
     Reply(403, "unauthorized_client: the API key lacks the revoke scope", JSON,
           ref("OAuthError")),
     *problems(413, 503)),
    bodies=(Body(FORM, {"type": "object", "required": ["token"],
                        "properties": {"token": {"type": "string"},
                                       "token_type_hint": {"type": "string"}}}),))


def oauth_error(status: int, error: str, description: str, *,
                headers: dict[str, str] | None = None) -> web.Response:
    """RFC 6749 section 5.2 error body."""
    return web.json_response({"error": error, "error_description": description},
                             status=status, headers={**NO_STORE, **(headers or {})})


def invalid_client(description: str) -> web.Response:
    return oauth_error(401, "invalid_client", description,
                       headers={"WWW-Authenticate": 'Basic realm="revoker"'})


def authenticate(request: web.Request) -> tuple[str, bool]:
    """(client id, may revoke any token). Raises Unauthenticated / Forbidden."""
    client_id = oauth_client(request)
    if client_id is not None:
        return client_id, False
    principal = require(request, "revoke")
    return principal.name, principal.allows("admin")


@routes.post("/oauth2/revoke")
@declare(REVOKE)
async def revoke(request: web.Request) -> web.Response:
    try:
        client_id, any_token = authenticate(request)
    except Unauthenticated as exc:
        return invalid_client(str(exc))
    except Forbidden as exc:
        return oauth_error(403, "unauthorized_client", str(exc))
    if request.content_type != FORM_TYPE:
        return oauth_error(400, "invalid_request", f"the body must be {FORM_TYPE}")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token:
        return oauth_error(400, "invalid_request", "the form field 'token' is required")
    hint = form.get("token_type_hint")
    try:
        verified = await request.app[VALIDATOR].validate_waiting(token)
    except TokenError as exc:
        log.info("revocation of an unacceptable token by %s ignored: %s", client_id,
                 exc.reason)
        return web.Response(status=200, headers=NO_STORE)
    owner = verified.claims.client
    if not any_token and owner != client_id:
        return oauth_error(400, "unauthorized_client",
                           "the token was not issued to this client")
    wanted = to_revoke(verified, refresh_hint=hint == "refresh_token")
    if wanted:
        await request.app[SERVICE].revoke_many(wanted, actor=client_id, source="oauth")
    return web.Response(status=200, headers=NO_STORE)


def to_revoke(verified: Verified, *, refresh_hint: bool) -> list[RevokeRequest]:
    claims, payload = verified.claims, verified.payload
    wanted = []
    if claims.jti is not None:
        exp = payload.get("exp")
        token_exp = math.ceil(exp) if isinstance(exp, int | float) else None
        wanted.append(RevokeRequest(kind="jti", value=claims.jti, token_exp=token_exp,
                                    reason="oauth revoke"))
    is_refresh = refresh_hint or str(payload.get("typ", "")).lower() == "refresh"
    if is_refresh and claims.sid is not None:
        wanted.append(RevokeRequest(kind="sid", value=claims.sid,
                                    reason="oauth revoke of a refresh token"))
    return wanted
