"""Global Token Revocation (draft-parecki-oauth-global-token-revocation-06):
``POST /oauth2/global-token-revocation``.

A security tool or an identity provider asks that every token of one user stop being
accepted. What the draft asks, and how it is done here:

- the body is ``application/json`` with ``sub_id``, an RFC 9493 subject identifier. The
  formats that name something a token can be matched by are honoured, read by
  ``revoker.subjects`` exactly as Shared Signals subjects are: ``iss_sub`` (its ``sub``;
  the ``iss`` must be a trusted issuer of ``REVOKER_OIDC_ISSUERS`` or
  ``REVOKER_JWT_ISSUER``), ``opaque`` (a user id), ``email`` (matches tokens whose ``sub``
  is the address) and ``complex`` (its ``user``; a ``session`` alone revokes that
  session). The user is revoked with cutoff = the end of the current second: every token
  issued so far, including earlier in this second, is refused; the identity provider's
  next login (after it) passes, which is the re-authentication the draft requires.
- the request must be authenticated with a credential meant for it (the draft's
  security considerations: a narrowly scoped credential, as revoking a user everywhere is
  a denial of service in the wrong hands): an API key with ``revoke`` as a bearer
  credential, or an OAuth client of ``REVOKER_OAUTH_CLIENTS`` by HTTP Basic **only** when
  it is listed in ``REVOKER_GTR_CLIENTS`` (a client allowed to revoke or introspect its
  own tokens may not log out every user).
- answers: 204 when the revocation is stored; 400 for a malformed body or an
  unsupported subject format; 401 / 403 for a missing or insufficient credential; 404
  ("user not found") for an ``iss_sub`` of an issuer whose tokens are not checked here;
  413 / 415 / 503 as every route of the service. Errors are problem+json documents (the
  draft defines no body). Nothing is revoked unless the answer is 204.

Announced as ``global_token_revocation_endpoint`` by ``revoker.web.metadata``.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from revoker.errors import Forbidden, InvalidInput, Unauthenticated
from revoker.subjects import UNKNOWN_ISSUER, SubjectError, parse_subject, revocations
from revoker.web.auth import oauth_client, require
from revoker.web.jsonio import read_json
from revoker.web.problem import problem
from revoker.web.schemas import JSON, OAUTH_CLIENT, problem_reply, problems
from revoker.web.spec import Body, Operation, Reply, declare
from revoker.web.state import SERVICE, SETTINGS

routes = web.RouteTableDef()
PATH: Final = "/oauth2/global-token-revocation"
REASON: Final = "global token revocation"
NO_STORE: Final = {"Cache-Control": "no-store"}
_SUBJECT: Final = {
    "type": "object", "required": ["format"], "properties": {"format": {"type": "string"}},
    "description": "An RFC 9493 subject identifier: iss_sub, opaque, email or complex "
                   "(user and/or session) are honoured"}
GTR: Final = Operation(
    "Global Token Revocation: revoke every token of the user named by sub_id", "logout",
    OAUTH_CLIENT,
    (Reply(204, "the user's tokens are revoked"),
     problem_reply(400, "malformed body or unsupported subject format"),
     problem_reply(404, "the subject's issuer issues no tokens checked here"),
     *problems(401, 403, 413, 415, 503)),
    bodies=(Body(JSON, {"type": "object", "required": ["sub_id"],
                        "properties": {"sub_id": _SUBJECT}}),))


def authenticate(request: web.Request) -> str:
    """The caller's name (the records' actor). Raises Unauthenticated / Forbidden."""
    client_id = oauth_client(request)
    if client_id is None:
        return require(request, "revoke").name
    if client_id not in request.app[SETTINGS].gtr_clients:
        raise Forbidden(f"the OAuth client {client_id!r} may not revoke users "
                        "(REVOKER_GTR_CLIENTS)", scope="revoke")
    return client_id


def trusted_issuers(request: web.Request) -> frozenset[str]:
    """Issuers whose ``sub`` values are the ones tokens checked here carry."""
    settings = request.app[SETTINGS]
    named = [issuer for issuer, _ in settings.oidc_issuers]
    return frozenset(named + ([settings.jwt_issuer] if settings.jwt_issuer else []))


@routes.post(PATH)
@declare(GTR)
async def global_token_revocation(request: web.Request) -> web.Response:
    try:
        actor = authenticate(request)
    except Unauthenticated as exc:
        if not request.headers.get("Authorization", "").lower().startswith("basic"):
            raise
        return problem(401, str(exc), headers={"WWW-Authenticate": 'Basic realm="revoker"'})
    body = await read_json(request)
    if not isinstance(body, dict) or "sub_id" not in body:
        raise InvalidInput("the body must be a JSON object with sub_id", field="sub_id")
    try:
        subject = parse_subject(body["sub_id"], issuers=trusted_issuers(request))
        action = "subject" if subject.user or subject.opaque else "session"
        wanted = revocations(subject, action, cutoff=None, reason=REASON)
    except SubjectError as exc:
        status = 404 if exc.problem == UNKNOWN_ISSUER else 400
        return problem(status, exc.description, headers=NO_STORE)
    outcomes = await request.app[SERVICE].revoke_many(wanted, actor=actor, source="gtr")
    refused = [o for o in outcomes if isinstance(o, InvalidInput)]
    if refused:  # values are checked by the subject rules; kept as a guard
        raise refused[0]
    return web.Response(status=204, headers=NO_STORE)
