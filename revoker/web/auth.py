"""Who may call what: API keys with scopes, presented as a header."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final
from urllib.parse import unquote_plus

from aiohttp import hdrs, web
from multidict import istr

from revoker.apikeys import ANONYMOUS_CHECKER, KeyRing, Principal
from revoker.errors import Forbidden, Unauthenticated
from revoker.web.state import KEYRING, SETTINGS

#: Header names are looked up case-insensitively: an ``istr`` is folded once, here, where a
#: plain ``str`` is folded again on every lookup (about 40 ns each, on every check).
KEY_HEADER: Final = istr("X-Revoker-Key")


def presented_key(request: web.BaseRequest, *, allow_authorization: bool = True) -> str | None:
    """``X-Revoker-Key`` wins; ``Authorization: Bearer`` is read only where it does not
    carry a user's token."""
    key = request.headers.get(KEY_HEADER)
    if key is not None:
        return key.strip()
    if not allow_authorization:
        return None
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def oauth_client(request: web.Request) -> str | None:
    """The OAuth client authenticated by HTTP Basic (RFC 6749 2.3.1), None without Basic.

    Wrong credentials raise ``Unauthenticated``. Every configured client is compared (in
    constant time, on SHA-256 digests) so timing does not reveal which ids exist.
    """
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed HTTP Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or len(decoded) > 1024:
        raise Unauthenticated("malformed HTTP Basic credentials")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    candidate = hashlib.sha256(secret.encode("utf-8")).digest()
    found: str | None = None
    for client in request.app[SETTINGS].oauth_clients:
        same_id = hmac.compare_digest(client.client_id.encode(), client_id.encode())
        if hmac.compare_digest(candidate, client.digest) and same_id:
            found = client.client_id
    if found is None:
        raise Unauthenticated("unknown OAuth client or wrong secret")
    return found


def require(request: web.Request, scope: str, *, allow_authorization: bool = True) -> Principal:
    """Return the caller, or raise 401/403. Check scope may be opened to everyone."""
    return authorize(request, scope, request.app[SETTINGS].check_auth, request.app[KEYRING],
                     allow_authorization=allow_authorization)


def authorize(request: web.BaseRequest, scope: str, check_auth: str, keyring: KeyRing, *,
              allow_authorization: bool = True) -> Principal:
    """``require`` with the application state passed in (the fast lane has no route)."""
    if scope == "check" and check_auth == "none":
        return ANONYMOUS_CHECKER
    key = presented_key(request, allow_authorization=allow_authorization)
    if key is None:
        raise Unauthenticated("an API key is required (Authorization: Bearer or X-Revoker-Key)")
    principal = keyring.find(key)
    if principal is None:
        raise Unauthenticated("the API key is not valid")
    if not principal.allows(scope):
        raise Forbidden(f"the key {principal.name!r} lacks the {scope!r} scope", scope=scope)
    return principal
