"""Validating tokens inside the application with the service's own validator.

``LocalVerifier`` wraps ``revoker.tokens.TokenValidator``, the very code behind
``/v1/authz``: the same algorithm allow-list (never ``none``, never HS* beside
asymmetric keys), the same key/algorithm fit, the same ``exp``/``nbf``/``iat`` rules with
leeway, the same maximum lifetime, ``iss``/``aud`` and required claims, and the same
refusal reasons. Nothing about a token is decided twice in two places.

``revoker.tokens`` is imported only when a ``LocalVerifier`` is built: it counts
refusals in revoker's Prometheus counters, which is service machinery an application
that delegates to ``/v1/authz`` should not load.

The JWKS (when one is configured) is read on the SDK's background loop; the validator
reads keys from a snapshot that loop keeps current, so it can be called from any
thread or loop. A kid nobody knows yet makes the caller wait, bounded, for one
(rate-limited) new read of the JWKS, as ``/v1/authz`` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from revoker.errors import TokenError
from revoker.sdk.runtime import BackgroundLoop

if TYPE_CHECKING:
    from revoker.tokens import JwksKeys, TokenValidator, Verified


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    """Where keys come from and which tokens are acceptable; mirror these on the
    service's ``REVOKER_JWT_*`` settings so both judge a token alike."""

    jwks_url: str | None = None
    public_keys: Sequence[str] = ()
    secret: str | None = None
    algorithms: Sequence[str] = ("RS256", "ES256", "EdDSA")
    issuer: str | None = None
    audience: Sequence[str] = ()
    leeway_s: int = 30
    max_token_lifetime_s: int = 86400
    required_claims: Sequence[str] = ()
    jwks_refresh_s: float = 300.0
    jwks_min_refetch_s: float = 5.0
    jwks_refetch_wait_s: float = 2.0
    cache_size: int = 10000

    @property
    def has_keys(self) -> bool:
        return bool(self.jwks_url or self.public_keys or self.secret)


class LoopKeys:
    """A JWKS read on the background loop, readable from any thread (a ``KeySource``)."""

    def __init__(self, inner: JwksKeys, runtime: BackgroundLoop,
                 algorithms: Sequence[str]) -> None:
        self._inner = inner
        self._runtime = runtime
        self._algorithms = tuple(algorithms)
        self._snapshot: dict[tuple[str | None, str], Any] = {}
        self._kids: frozenset[str] = frozenset()
        inner.on_change(self._rebuild)

    def _rebuild(self) -> None:
        """Called on the background loop whenever the key set changed."""
        snapshot: dict[tuple[str | None, str], Any] = {}
        kids = self._inner.kids
        for alg in self._algorithms:
            for kid in (*kids, None):
                key = self._inner.get(kid, alg)
                if key is not None:
                    snapshot[(kid, alg)] = key
        self._snapshot, self._kids = snapshot, frozenset(kids)

    def get(self, kid: str | None, alg: str) -> Any | None:
        return self._snapshot.get((kid, alg))

    def knows(self, kid: str | None) -> bool:
        return kid is None or kid in self._kids

    async def refetch(self) -> bool:
        """A new read for an unknown kid, on the loop that owns the JWKS session."""
        return await self._runtime.run(self._inner.refetch())

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()


class LocalVerifier:
    """``verify`` (threads) and ``verify_async`` (event loops) return ``Verified`` or
    raise ``revoker.errors.TokenError`` with the service's reason."""

    def __init__(self, settings: VerifierSettings, runtime: BackgroundLoop) -> None:
        from revoker.tokens import JwksKeys, KeyChain, KeySource, StaticKeys, TokenValidator

        if not settings.has_keys:
            raise ValueError("local verification needs jwks_url, public_keys or secret")
        self.runtime = runtime
        sources: list[KeySource] = []
        if settings.public_keys or settings.secret:
            sources.append(StaticKeys(secret=settings.secret,
                                      public_keys=settings.public_keys))
        self.jwks: LoopKeys | None = None
        if settings.jwks_url:
            inner = JwksKeys(settings.jwks_url, refresh_s=settings.jwks_refresh_s,
                             min_refetch_s=settings.jwks_min_refetch_s,
                             refetch_wait_s=settings.jwks_refetch_wait_s)
            self.jwks = LoopKeys(inner, runtime, settings.algorithms)
            sources.append(self.jwks)
        keys: KeySource = sources[0] if len(sources) == 1 else KeyChain(sources)
        self.validator: TokenValidator = TokenValidator(
            keys, algorithms=settings.algorithms, issuer=settings.issuer,
            audience=settings.audience, leeway_s=settings.leeway_s,
            max_lifetime_s=settings.max_token_lifetime_s,
            required_claims=settings.required_claims, cache_size=settings.cache_size)
        # The validator's cache of verified tokens is shared by every thread; the lock
        # keeps its bookkeeping whole (a key rotation empties it from the loop's thread).
        self._lock = threading.Lock()
        if self.jwks is not None:
            inner.on_change(self._clear)

    def _clear(self) -> None:
        with self._lock:
            self.validator.clear_cache()

    async def start(self) -> None:
        """On the background loop: the first JWKS read (bounded; a failure is logged)."""
        if self.jwks is not None:
            await self.jwks.start()

    async def stop(self) -> None:
        if self.jwks is not None:
            await self.jwks.stop()

    def _validate(self, token: str) -> Verified:
        with self._lock:
            return self.validator.validate(token)

    def verify(self, token: str, *, wait_s: float = 3.0) -> Verified:
        try:
            return self._validate(token)
        except TokenError as exc:
            if exc.reason != "unknown key" or self.jwks is None:
                raise
            if not self.runtime.call(self.jwks.refetch(), timeout_s=wait_s):
                raise
        return self._validate(token)

    async def verify_async(self, token: str) -> Verified:
        try:
            return self._validate(token)
        except TokenError as exc:
            if exc.reason != "unknown key" or self.jwks is None:
                raise
            if not await self.jwks.refetch():
                raise
        return self._validate(token)


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS whose signature the *service* has just
    verified (``/v1/authz`` answered 200 for this exact string): reading them here
    decides nothing, it only hands the claims to the application."""
    try:
        head, payload, _ = token.split(".")
        return _segment(head), _segment(payload)
    except (ValueError, binascii.Error, RecursionError):
        return {}, {}


def _segment(text: str) -> dict[str, Any]:
    data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
