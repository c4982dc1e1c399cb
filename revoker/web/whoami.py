"""``GET /v1/whoami``: the name and scopes of the presented API key.

The admin console signs in with an operator's own key and shows, before anything is
attempted, who it acts as (the ``actor`` of every record it writes) and which controls that
key may use. It always needs a real key, even where checks are open to anyone
(``REVOKER_CHECK_AUTH=none``): the anonymous checker is nobody to show.
"""

from __future__ import annotations

from aiohttp import web

from revoker.config import SCOPES
from revoker.errors import Unauthenticated
from revoker.web.auth import presented_key
from revoker.web.jsonio import respond
from revoker.web.schemas import ANY_KEY, json_reply, problems
from revoker.web.spec import Operation, declare
from revoker.web.state import KEYRING

routes = web.RouteTableDef()
WHOAMI = Operation(
    "The name and scopes of the presented API key", "operations", ANY_KEY,
    (json_reply(200, "the key", {
        "type": "object", "additionalProperties": False, "required": ["name", "scopes"],
        "properties": {"name": {"type": "string"}, "scopes": {
            "type": "array", "uniqueItems": True,
            "items": {"type": "string", "enum": list(SCOPES)}}}}),
     *problems(400, 401)))


@routes.get("/v1/whoami")
@declare(WHOAMI)
async def whoami(request: web.Request) -> web.Response:
    key = presented_key(request)
    if key is None:
        raise Unauthenticated("an API key is required (Authorization: Bearer or X-Revoker-Key)")
    principal = request.app[KEYRING].find(key)
    if principal is None:
        raise Unauthenticated("the API key is not valid")
    return respond({"name": principal.name, "scopes": sorted(principal.scopes)},
                   headers={"Cache-Control": "no-store"})
