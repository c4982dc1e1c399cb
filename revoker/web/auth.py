"""Who may call what: API keys with scopes, presented as a header."""

from __future__ import annotations

from aiohttp import web

from revoker.errors import Forbidden, Unauthenticated
from revoker.keys import ANONYMOUS_CHECKER, Principal
from revoker.web.state import KEYRING, SETTINGS

KEY_HEADER = "X-Revoker-Key"


def presented_key(request: web.Request, *, allow_authorization: bool = True) -> str | None:
    """``X-Revoker-Key`` wins; ``Authorization: Bearer`` is read only where it does not
    carry a user's token."""
    key = request.headers.get(KEY_HEADER)
    if key is not None:
        return key.strip()
    if not allow_authorization:
        return None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def require(request: web.Request, scope: str, *, allow_authorization: bool = True) -> Principal:
    """Return the caller, or raise 401/403. Check scope may be opened to everyone."""
    if scope == "check" and request.app[SETTINGS].check_auth == "none":
        return ANONYMOUS_CHECKER
    key = presented_key(request, allow_authorization=allow_authorization)
    if key is None:
        raise Unauthenticated("an API key is required (Authorization: Bearer or X-Revoker-Key)")
    principal = request.app[KEYRING].find(key)
    if principal is None:
        raise Unauthenticated("the API key is not valid")
    if not principal.allows(scope):
        raise Forbidden(f"the key {principal.name!r} lacks the {scope!r} scope", scope=scope)
    return principal
