"""Identity providers trusted to send logout tokens and Security Event Tokens.

``REVOKER_OIDC_ISSUERS`` names each issuer with its JWKS URL. A token is routed to its
issuer's keys by its (unverified) ``iss``; an issuer that is not configured is refused
before any key is looked at, and a token signed by one issuer's keys can never pass as
another's, because the verified ``iss`` must be the issuer whose keys verified it.

The keys come from the same per-URL cache as ``/v1/authz`` uses (``KeySets``): an
issuer whose JWKS is also ``REVOKER_JWKS_URL`` is read once, on one schedule. A kid
the cache does not know makes ``verify`` wait (bounded) for an immediate read, because
identity providers do not retry a refused logout: a provider restarted with a new key
must not lose its first logouts.

The claim rules per format live in ``revoker.tokens.signals``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from aiohttp import web

from revoker.config import ASYMMETRIC_ALGS, Settings
from revoker.errors import TokenError
from revoker.tokens import (
    KeySets,
    SignalRules,
    TokenValidator,
    Verified,
    key_sets_from_settings,
    peek,
)


class TrustedIssuers:
    """One signature validator per configured issuer, each on that issuer's JWKS."""

    def __init__(self, settings: Settings, key_sets: KeySets) -> None:
        self.rules = SignalRules.from_settings(settings)
        self.key_sets = key_sets
        self._by_issuer: dict[str, TokenValidator] = {}
        for issuer, jwks_url in settings.oidc_issuers:
            self._by_issuer[issuer] = TokenValidator(
                key_sets.for_url(jwks_url), algorithms=sorted(ASYMMETRIC_ALGS), issuer=issuer,
                audience=(), leeway_s=settings.leeway_s,
                max_lifetime_s=settings.max_token_lifetime_s, cache_size=0)

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._by_issuer

    async def start(self) -> None:
        await self.key_sets.start()

    async def stop(self) -> None:
        await self.key_sets.stop()

    async def verify(self, token: str) -> Verified:
        """Signature by the claimed issuer's keys; raises ``TokenError``: "untrusted
        issuer", "malformed token", "unknown key", "bad signature", "algorithm not
        allowed"."""
        _, unverified = peek(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._by_issuer:
            raise TokenError("untrusted issuer")
        verified = await self._by_issuer[issuer].verify_signature(token)
        if verified.payload.get("iss") != issuer:
            raise TokenError("untrusted issuer")
        return verified


def issuer_tag(issuer: str) -> str:
    """A short, key-safe name for an issuer in replay-protection keys."""
    return hashlib.sha256(issuer.encode()).hexdigest()[:16]


TRUSTED = web.AppKey("trusted_issuers", TrustedIssuers)


def ensure(app: web.Application) -> None:
    """Called by every route module that needs the issuers; sets them up once, on the
    access-token validator's key sets when it exists (one cache per JWKS URL)."""
    if TRUSTED in app:
        return
    from revoker.web.state import SETTINGS, VALIDATOR

    settings = app[SETTINGS]
    key_sets = app[VALIDATOR].key_sets if VALIDATOR in app else None
    app[TRUSTED] = TrustedIssuers(settings, key_sets or key_sets_from_settings(settings))
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    trusted = app[TRUSTED]
    await trusted.start()
    try:
        yield
    finally:
        await trusted.stop()
