"""``GET /v1/whoami``: the name and scopes of the presented API key.

The admin console signs in with an operator's own key and shows, before anything is
attempted, who it acts as (the ``actor`` of every record it writes) and which controls that
key may use. It always needs a real key, even where checks are open to anyone
(``REVOKER_CHECK_AUTH=none``): the anonymous checker is nobody to show.
"""

from __future__ import annotations

from aiohttp import web

from revoker.errors import InvalidInput, Unauthenticated
from revoker.web.auth import presented_key
from revoker.web.jsonio import respond
from revoker.web.state import KEYRING

routes = web.RouteTableDef()


@routes.get("/v1/whoami")
async def whoami(request: web.Request) -> web.Response:
    if request.query:
        raise InvalidInput(f"unknown query parameter {next(iter(request.query))!r}")
    key = presented_key(request)
    if key is None:
        raise Unauthenticated("an API key is required (Authorization: Bearer or X-Revoker-Key)")
    principal = request.app[KEYRING].find(key)
    if principal is None:
        raise Unauthenticated("the API key is not valid")
    return respond({"name": principal.name, "scopes": sorted(principal.scopes)},
                   headers={"Cache-Control": "no-store"})
