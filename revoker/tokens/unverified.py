"""Reading a token without verifying it: the size bound every reader applies first, the
JOSE header (to choose algorithm and key before verifying), and ``peek`` for callers
that only name a token.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

import jwt

from revoker.errors import TokenError
from revoker.tokens.claims import check_dates

MAX_TOKEN_BYTES: Final = 16 * 1024


def check_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large", code="too_large")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token *without* validating it.

    Used only where the caller is already trusted with the ``revoke`` or ``check`` scope
    and merely names a token (``POST /v1/check``, ``POST /v1/revocations``), and to route
    a signal to its claimed issuer's keys before verifying it. Its NumericDates are
    checked all the same: whoever reads the claims next must not meet ``10**400``.
    """
    check_size(token)
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed token")
    check_dates(payload)
    return header, payload


def read_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, read without PyJWT (it parses it again when it
    verifies): three segments, the first a base64url JSON object whose ``kid``, when
    present, is a string (as PyJWT requires of a header it reads)."""
    segment, dot, rest = token.partition(".")
    if not dot or rest.count(".") != 1:
        raise TokenError("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise TokenError("malformed token") from None
    if not isinstance(header, dict) or not isinstance(header.get("kid", ""), str):
        raise TokenError("malformed token")
    return header
