"""Identity providers trusted to send logout tokens and Security Event Tokens.

``REVOKER_OIDC_ISSUERS`` names each issuer with its JWKS URL. A token is routed to its
issuer's keys by its (unverified) ``iss``; an issuer that is not configured is refused
before any key is looked at, and a token signed by one issuer's keys can never pass as
another's, because the verified ``iss`` must be the issuer whose keys verified it.

Signature, algorithm and key checks are ``TokenValidator``'s; the claim rules differ per
format (a logout token or a SET need not carry ``exp``), so they are applied by the
route that knows the format.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from revoker.config import ASYMMETRIC_ALGS, Settings
from revoker.errors import TokenError
from revoker.tokens import JwksKeys, TokenValidator, Verified, peek


class TrustedIssuers:
    """One signature validator per configured issuer, each on that issuer's JWKS."""

    def __init__(self, settings: Settings) -> None:
        self.audience = frozenset(settings.oidc_audience)
        self.leeway_s = settings.leeway_s
        self.max_age_s = settings.oidc_max_age_s
        self._by_issuer: dict[str, TokenValidator] = {}
        for issuer, jwks_url in settings.oidc_issuers:
            keys = JwksKeys(jwks_url, refresh_s=settings.jwks_refresh_s)
            self._by_issuer[issuer] = TokenValidator(
                keys, algorithms=sorted(ASYMMETRIC_ALGS), issuer=issuer, audience=(),
                leeway_s=settings.leeway_s, max_lifetime_s=settings.max_token_lifetime_s,
                cache_size=0)

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._by_issuer

    async def start(self) -> None:
        """First fetches run together: one slow provider delays start-up once, not N times."""
        await asyncio.gather(*(v.start() for v in self._by_issuer.values()))

    async def stop(self) -> None:
        for validator in self._by_issuer.values():
            await validator.stop()

    def verify(self, token: str) -> Verified:
        """Signature by the claimed issuer's keys; raises ``TokenError``: "untrusted
        issuer", "malformed token", "unknown key", "bad signature", "algorithm not
        allowed"."""
        _, unverified = peek(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._by_issuer:
            raise TokenError("untrusted issuer")
        verified = self._by_issuer[issuer].verify_signature(token)
        if verified.payload.get("iss") != issuer:
            raise TokenError("untrusted issuer")
        return verified

    def audience_ok(self, aud: Any) -> bool:
        if isinstance(aud, str):
            return aud in self.audience
        return isinstance(aud, list) and any(isinstance(a, str) and a in self.audience
                                             for a in aud)


def issuer_tag(issuer: str) -> str:
    """A short, key-safe name for an issuer in replay-protection keys."""
    return hashlib.sha256(issuer.encode()).hexdigest()[:16]


TRUSTED = web.AppKey("trusted_issuers", TrustedIssuers)


def ensure(app: web.Application) -> None:
    """Called by every route module that needs the issuers; sets them up once."""
    if TRUSTED in app:
        return
    from revoker.web.state import SETTINGS

    app[TRUSTED] = TrustedIssuers(app[SETTINGS])
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    trusted = app[TRUSTED]
    await trusted.start()
    try:
        yield
    finally:
        await trusted.stop()


def number(payload: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim, None when absent; anything else is a malformed token."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
            or value in (float("inf"), float("-inf")):
        raise TokenError("malformed token")
    return float(value)
