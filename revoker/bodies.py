"""Client JSON bodies -> validated model objects; every failure is an ``InvalidInput``.

Parsing is strict (wrong types, unknown kinds, unknown fields are errors) because a
revocation that silently means something other than what its author wrote is worse
than a 400.
"""

from __future__ import annotations

import math
from typing import Any, Final

from revoker.errors import InvalidInput, TokenError, TooLarge
from revoker.model import (
    MAX_REASON_CHARS,
    Claims,
    RevokeRequest,
    check_kind,
    check_value,
    claims_from_token,
)
from revoker.tokens import MAX_TOKEN_BYTES, peek

REVOKE_FIELDS: Final = frozenset({"kind", "value", "expires_at", "ttl", "issued_before", "reason"})
TOKEN_REVOKE_FIELDS: Final = frozenset({"token", "reason"})
CLAIM_FIELDS: Final = ("jti", "sub", "sid", "kid", "client_id", "azp")
MAX_TIME: Final = 253402300799  # 9999-12-31: beyond this a NumericDate is nonsense
#: Longest explicit ``ttl``: ten years covers any real token; beyond is a typo.
MAX_TTL_S: Final = 10 * 366 * 86400


def require_object(body: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def parse_revoke(body: Any) -> RevokeRequest:
    data = require_object(body)
    if "token" in data:
        _no_extra(data, TOKEN_REVOKE_FIELDS)
        return _revoke_token(data)
    _no_extra(data, REVOKE_FIELDS)
    if "expires_at" in data and "ttl" in data:
        raise InvalidInput("give expires_at or ttl, not both", field="ttl")
    return RevokeRequest(
        kind=check_kind(data.get("kind")),
        value=check_value(data.get("value")),
        token_exp=_opt_time(data, "expires_at"),
        ttl_s=_opt_ttl(data),
        issued_before=_opt_time(data, "issued_before"),
        reason=_opt_reason(data),
    )


def _revoke_token(data: dict[str, Any]) -> RevokeRequest:
    header, payload = _peek(data["token"])
    del header
    jti = payload.get("jti")
    if not isinstance(jti, str):
        raise InvalidInput("token has no jti claim to revoke", field="token")
    check_value(jti, field="token jti")
    exp = payload.get("exp")
    token_exp = None
    if exp is not None:
        if not _is_number(exp):
            raise InvalidInput("token exp is not a NumericDate", field="token")
        token_exp = min(math.ceil(exp), MAX_TIME)
    return RevokeRequest(kind="jti", value=jti, token_exp=token_exp, reason=_opt_reason(data))


def parse_check(body: Any) -> Claims:
    data = require_object(body, "check item")
    has_token, has_claims = "token" in data, "claims" in data
    if has_token == has_claims or len(data) != 1:
        raise InvalidInput('give exactly one of "token" or "claims"')
    if has_token:
        header, payload = _peek(data["token"])
        return claims_from_token(payload, header)
    return _claims(require_object(data["claims"], "claims"))


def _claims(data: dict[str, Any]) -> Claims:
    values: dict[str, str | None] = {}
    for name in CLAIM_FIELDS:
        raw = data.get(name)
        values[name] = None if raw is None else check_value(raw, field=name)
    iat = data.get("iat")
    if iat is not None and not _is_number(iat):
        raise InvalidInput("iat must be a NumericDate (a number)", field="iat")
    return Claims(jti=values["jti"], sub=values["sub"], sid=values["sid"], kid=values["kid"],
                  client=values["client_id"] or values["azp"],
                  iat=None if iat is None else float(iat))


def _peek(token: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str) or not token:
        raise InvalidInput("token must be a non-empty string", field="token")
    if len(token) > MAX_TOKEN_BYTES:
        raise TooLarge(f"token is larger than {MAX_TOKEN_BYTES} bytes", field="token")
    try:
        return peek(token)
    except TokenError as exc:
        raise InvalidInput(f"token is not a JWT: {exc.reason}", field="token") from None


def _no_extra(data: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(f"unknown field(s): {', '.join(extra[:5])}", field=extra[0][:64])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_time(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIME:
        raise InvalidInput(f"{name} must be an integer Unix time in seconds", field=name)
    return value


def _opt_ttl(data: dict[str, Any]) -> int | None:
    value = data.get("ttl")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TTL_S:
        raise InvalidInput("ttl must be a non-negative integer number of seconds", field="ttl")
    return value


def _opt_reason(data: dict[str, Any]) -> str | None:
    value = data.get("reason")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason must be a string of at most {MAX_REASON_CHARS} characters",
                           field="reason")
    if any(ord(ch) < 0x20 and ch not in "\t" for ch in value):
        raise InvalidInput("reason may not contain control characters", field="reason")
    return value
