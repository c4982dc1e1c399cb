"""OAuth 2.0 Authorization Server Metadata (RFC 8414):
``GET /.well-known/oauth-authorization-server``.

It announces the OAuth endpoints revoker serves, so that a security tool or an identity
provider configured with revoker's URL alone finds them: token revocation (RFC 7009),
introspection (RFC 7662) and Global Token Revocation. revoker issues no tokens, so it
lists no response or grant types (``response_types_supported`` is required by RFC 8414:
it is present and empty).

The ``issuer`` and every URL are built from ``REVOKER_PUBLIC_URL``, never from the
request's ``Host`` header: a forged host would otherwise make the document (and any cache
in front of it) send callers, with their credentials, elsewhere. Without the setting the
document is a 404, saying so. RFC 8414 places the document of an issuer with a path at
``/.well-known/oauth-authorization-server{path}``: with a path in ``REVOKER_PUBLIC_URL``,
the reverse proxy must map that URL to this route.

Authentication methods are listed as they are usable: ``client_secret_basic`` when OAuth
clients are configured (for Global Token Revocation, when ``REVOKER_GTR_CLIENTS`` names
some), and ``Bearer`` (an API key presented as a bearer credential, from the access
token types registry as RFC 8414 allows).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from revoker.config import Settings
from revoker.errors import NotFound
from revoker.web.gtr import PATH as GTR_PATH
from revoker.web.jsonio import respond
from revoker.web.schemas import PUBLIC, json_reply, problem_reply
from revoker.web.spec import Operation, declare
from revoker.web.state import SETTINGS

routes = web.RouteTableDef()
PATH: Final = "/.well-known/oauth-authorization-server"
CACHE: Final = {"Cache-Control": "public, max-age=300"}
_ENDPOINTS: Final = ("issuer", "revocation_endpoint", "introspection_endpoint",
                     "global_token_revocation_endpoint")
METADATA: Final = Operation(
    "OAuth 2.0 Authorization Server Metadata (RFC 8414)", "operations", PUBLIC,
    (json_reply(200, "the metadata document", {
        "type": "object", "required": ["issuer", "global_token_revocation_endpoint"],
        "properties": {name: {"type": "string"} for name in _ENDPOINTS}}),
     problem_reply(404, "REVOKER_PUBLIC_URL is not set")))


def document(settings: Settings) -> dict[str, Any]:
    base = settings.public_url
    if base is None:
        raise NotFound("REVOKER_PUBLIC_URL is not set, so revoker publishes no metadata")
    clients = ["client_secret_basic"] if settings.oauth_clients else []
    gtr_clients = ["client_secret_basic"] if settings.gtr_clients else []
    return {
        "issuer": base,
        "response_types_supported": [],
        "grant_types_supported": [],
        "revocation_endpoint": base + "/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": [*clients, "Bearer"],
        "introspection_endpoint": base + "/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": [*clients, "Bearer"],
        "global_token_revocation_endpoint": base + GTR_PATH,
        "global_token_revocation_endpoint_auth_methods_supported": [*gtr_clients, "Bearer"],
    }


@routes.get(PATH)
@declare(METADATA)
async def metadata(request: web.Request) -> web.Response:
    return respond(document(request.app[SETTINGS]), headers=CACHE)
