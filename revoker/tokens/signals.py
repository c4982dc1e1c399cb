"""Claim rules of the signals identity providers send: OpenID Connect logout tokens
(Back-Channel Logout 1.0, section 2.6) and Security Event Tokens (RFC 8417).

The signature is checked first (``TokenValidator.verify_signature`` on the issuer's
keys); these rules then read the claims with the same NumericDate parser and audience
rule as access tokens. Each failure is a ``TokenError`` with its own reason, which the
route turns into its protocol's 400.

Age: a signal acts on tokens issued before it, and no token lives longer than the max
token lifetime (plus leeway), so a signal whose ``iat`` is older than that can revoke
nothing still valid; accepting it would only let an old, captured signal be replayed.
Logout tokens are held to the tighter ``REVOKER_OIDC_MAX_AGE`` too, the window in which
their ``jti`` is remembered against replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from revoker.errors import TokenError
from revoker.tokens.claims import audience_ok, identifier, numeric_date

if TYPE_CHECKING:
    from revoker.config import Settings

LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TYP: Final = frozenset({"logout+jwt", "application/logout+jwt", "jwt"})
SET_TYP: Final = frozenset({"secevent+jwt", "application/secevent+jwt"})


@dataclass(frozen=True, slots=True)
class SignalRules:
    """What every signal is held to: our audiences, clock leeway and the age bounds."""

    audience: frozenset[str]
    leeway_s: int
    max_lifetime_s: int
    logout_max_age_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SignalRules:
        return cls(audience=frozenset(settings.oidc_audience), leeway_s=settings.leeway_s,
                   max_lifetime_s=settings.max_token_lifetime_s,
                   logout_max_age_s=settings.oidc_max_age_s)


@dataclass(frozen=True, slots=True)
class LogoutToken:
    issuer: str
    jti: str
    iat: float
    sub: str | None
    sid: str | None
    #: until when a replay could still pass validation (so the jti must be remembered)
    acceptable_until: int


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    issuer: str
    jti: str
    iat: float
    #: event type URI -> event object, as the transmitter sent them
    events: dict[str, Any]
    payload: dict[str, Any]


def logout_token(header: dict[str, Any], payload: dict[str, Any], *, rules: SignalRules,
                 now: float) -> LogoutToken:
    """Section 2.6 steps 3-6, in order (step 2, the signature, is checked before)."""
    _check_typ(header, LOGOUT_TYP, "typ is not logout+jwt")
    _check_audience(payload, rules)
    max_age_s = min(rules.logout_max_age_s, rules.max_lifetime_s)
    iat = _check_iat(payload, rules, now=now, max_age_s=max_age_s)
    exp = _check_exp(payload, rules, now=now)
    jti = _required_identifier(payload, "jti")
    sub, sid = identifier(payload, "sub"), identifier(payload, "sid")
    if sub is None and sid is None:
        raise TokenError("neither sub nor sid")
    events = payload.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise TokenError("events lacks the back-channel logout event")
    if "nonce" in payload:
        raise TokenError("nonce is not allowed")
    until = iat + max_age_s + rules.leeway_s
    if exp is not None:
        until = min(until, exp + rules.leeway_s)
    return LogoutToken(issuer=str(payload["iss"]), jti=jti, iat=iat, sub=sub, sid=sid,
                       acceptable_until=int(until) + 1)


def security_event(header: dict[str, Any], payload: dict[str, Any], *, rules: SignalRules,
                   now: float) -> SecurityEvent:
    """RFC 8417 section 2.2 claims of a SET addressed to us, not too old, not expired."""
    _check_typ(header, SET_TYP, "typ is not secevent+jwt")
    _check_audience(payload, rules)
    jti, events = payload.get("jti"), payload.get("events")
    if "iat" not in payload or not isinstance(jti, str) or not isinstance(events, dict):
        raise TokenError("a SET needs iat, jti and events (RFC 8417)")
    iat = _check_iat(payload, rules, now=now, max_age_s=rules.max_lifetime_s)
    _check_exp(payload, rules, now=now)
    return SecurityEvent(issuer=str(payload["iss"]), jti=jti, iat=iat, events=events,
                         payload=payload)


def _check_typ(header: dict[str, Any], accepted: frozenset[str], reason: str) -> None:
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in accepted):
        raise TokenError(reason)


def _check_audience(payload: dict[str, Any], rules: SignalRules) -> None:
    if not audience_ok(payload.get("aud"), rules.audience):
        raise TokenError("wrong audience")


def _check_iat(payload: dict[str, Any], rules: SignalRules, *, now: float,
               max_age_s: int) -> float:
    iat = numeric_date(payload, "iat")
    if iat is None:
        raise TokenError("missing claim: iat")
    if iat > now + rules.leeway_s:
        raise TokenError("issued in the future")
    if iat < now - max_age_s - rules.leeway_s:
        raise TokenError("issued too long ago")
    return iat


def _check_exp(payload: dict[str, Any], rules: SignalRules, *, now: float) -> float | None:
    exp = numeric_date(payload, "exp")
    if exp is not None and exp <= now - rules.leeway_s:
        raise TokenError("expired")
    return exp


def _required_identifier(payload: dict[str, Any], name: str) -> str:
    value = identifier(payload, name)
    if value is None:
        raise TokenError(f"missing claim: {name}")
    return value
