"""``POST /v1/logout``: a user ends their own token (and, on request, all their tokens).

The user's token is the credential: it is validated exactly as ``/v1/authz`` validates
it (signature, algorithms, times, issuer, audience, lifetime) and must not be revoked
already, so a stolen token that was revoked cannot be used to log its owner out of
everything. ``?everywhere=true`` also revokes the ``sub`` with cutoff = now.
"""

from __future__ import annotations

import math
from typing import Final

from aiohttp import web

from revoker.errors import InvalidInput, TokenError
from revoker.model import RevokeRequest
from revoker.web.authz import bearer_token, refuse, validate_and_check
from revoker.web.problem import CONTENT_TYPE as PROBLEM
from revoker.web.schemas import HEADER_TEXT, USER, problems, ref
from revoker.web.spec import Operation, Param, Reply, declare
from revoker.web.state import SERVICE, VALIDATOR

routes = web.RouteTableDef()
TRUE: Final = frozenset({"true", "1", "yes"})
FALSE: Final = frozenset({"false", "0", "no", ""})
LOGOUT: Final = Operation(
    "Revoke the presented token's jti (and its sub with everywhere=true)", "logout", USER,
    (Reply(204, "revoked"),
     Reply(401, "missing, invalid, expired or already revoked token", PROBLEM, ref("Problem"),
           {"WWW-Authenticate": HEADER_TEXT}),
     *problems(400, 503)),
    query=(Param("everywhere", {"type": "string", "enum": sorted(TRUE | FALSE)},
                 "also revoke every token of the user (case-insensitive)"),))


def everywhere(request: web.Request) -> bool:
    text = request.query.get("everywhere", "").lower()
    if text not in TRUE | FALSE:
        raise InvalidInput("everywhere must be true or false", field="everywhere")
    return text in TRUE


@routes.post("/v1/logout")
@declare(LOGOUT)
async def logout(request: web.Request) -> web.Response:
    all_sessions = everywhere(request)
    try:
        token = bearer_token(request)
        # A kid not seen yet waits for the keys to be read again: a user logging out with
        # a token from a just-rotated key must not be told their token is unknown.
        await request.app[VALIDATOR].validate_waiting(token)
        verified, _ = await validate_and_check(request, token)
    except TokenError as exc:
        return refuse(exc.reason)
    claims = verified.claims
    if claims.jti is None:
        return refuse("missing claim: jti")
    exp = verified.payload.get("exp")
    wanted = [RevokeRequest(kind="jti", value=claims.jti,
                            token_exp=math.ceil(exp) if isinstance(exp, int | float) else None,
                            reason="logout")]
    if all_sessions:
        if claims.sub is None:
            raise InvalidInput("the token has no sub to log out everywhere")
        wanted.append(RevokeRequest(kind="sub", value=claims.sub, reason="logout everywhere"))
    await request.app[SERVICE].revoke_many(wanted, actor="logout", source="logout")
    return web.Response(status=204, headers={"Cache-Control": "no-store"})
