"""Claim readers shared by every token format the service reads (access tokens, logout
tokens, Security Event Tokens): one NumericDate parser, one audience rule, one rule for
claims that become revocation lookups. Each raises ``TokenError`` with a stable reason,
never anything else, so a hostile claim can only ever be a 4xx.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

from revoker.errors import TokenError
from revoker.model import is_valid_value


def numeric_date(payload: dict[str, Any], name: str) -> float | None:
    """An RFC 7519 NumericDate claim, None when absent.

    JSON lets a number be anything: ``10**400`` (an int no float can hold), ``1e309``
    (read as infinity), a negative date before 1970, a bool (an int to Python) or a
    string. None of these is a moment a token could name, so each is a malformed token.
    """
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("malformed token")
    try:
        number = float(value)
    except OverflowError:
        raise TokenError("malformed token") from None
    if not math.isfinite(number) or number < 0:
        raise TokenError("malformed token")
    return number


#: The registered NumericDate claims of RFC 7519.
DATE_CLAIMS: Final = ("exp", "nbf", "iat")


def check_dates(payload: dict[str, Any]) -> None:
    """Every NumericDate claim present is one: checked on every token the service reads,
    before anything else reads a date from it (a revocation lookup reads ``iat``)."""
    for name in DATE_CLAIMS:
        numeric_date(payload, name)


def audience_ok(aud: Any, accepted: frozenset[str]) -> bool:
    """``aud`` (a string or a list of strings) names at least one accepted audience."""
    if isinstance(aud, str):
        return aud in accepted
    if isinstance(aud, list):
        return any(isinstance(a, str) and a in accepted for a in aud)
    return False


def identifier(payload: dict[str, Any], name: str) -> str | None:
    """A claim that becomes a revocation lookup (``jti``, ``sub``, ``sid`` ...), None when
    absent. A present but unusable value could never match a revocation, so it is a
    malformed token rather than a token that silently cannot be revoked."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not is_valid_value(value):
        raise TokenError("malformed token")
    return value


def check_identifiers(payload: dict[str, Any], names: Iterable[str]) -> None:
    for name in names:
        identifier(payload, name)


def cutoff_after(iat: float, *, now: float) -> int:
    """The ``issued_before`` of a revocation a signal issued at ``iat`` asks for.

    NumericDates are whole seconds, so every token issued up to the signal, including one
    earlier in the same second, needs ``iat + 1``; a signal dated (within leeway) in the
    future is capped at the end of the current second, the latest cutoff the contract
    allows.
    """
    return min(math.floor(iat) + 1, math.floor(now) + 1)
