"""flask-jwt-extended: revoker as the blocklist, instead of a Redis set of this app's own.

    jwt = JWTManager(app)
    jwt.token_in_blocklist_loader(blocklist_loader(guard))

flask-jwt-extended validates the token; the callback answers whether revoker has
revoked it (by jti, sub, sid, kid or client), from the in-process copy while it is
fresh, else from ``POST /v1/check``. When nobody can tell and the fail mode is
``closed``, it answers True: the token is refused (flask-jwt-extended's 401 "Token has
been revoked"), since the callback can only say yes or no.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from revoker.sdk.guard import Guard


def blocklist_loader(guard: Guard) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def token_in_blocklist(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
        return guard.is_revoked(jwt_header, jwt_payload)

    return token_in_blocklist
