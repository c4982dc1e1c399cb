"""The only module that imports ``jwt``: reading and validating tokens.

Security rules that live here: tokens are size-checked before any decoding; the
algorithm allow-list never contains ``none``; a token's header never chooses where keys
come from (``jku``, ``x5u``, ``x5c`` and embedded ``jwk`` are ignored, ``kid`` is only an
exact lookup in keys the operator configured).
"""

from __future__ import annotations

from typing import Any, Final

import jwt

from revoker.errors import TokenError

MAX_TOKEN_BYTES: Final = 16 * 1024


def check_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large", code="too_large")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token *without* validating it.

    Used only where the caller is already trusted with the ``revoke`` or ``check`` scope
    and merely names a token (``POST /v1/check``, ``POST /v1/revocations``).
    """
    check_size(token)
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed token")
    return header, payload
