"""``Guard``: one decision per bearer token, shared by every framework integration.

Two modes:

- ``mirror`` (default): the token is validated here by the service's own validator
  (``revoker.sdk.verify``) and checked against the in-process copy of the denylist
  (``revoker.sdk.mirror``). When the copy is too stale to answer, the claims go to
  ``POST /v1/check``; when that fails too, the fail mode decides.
- ``authz``: both are delegated to ``/v1/authz`` (one round trip per request, no keys
  here). When the service is unreachable, fail mode ``open`` can accept only if local
  keys are configured: a token nobody verified is never accepted.

Every outcome is an ``Outcome``: ``ok`` (with the verified claims), ``refused`` (401,
with the reason) or ``unavailable`` (503, fail mode ``closed``). An ``ok`` reached
without revocation state has ``degraded`` set: integrations add the
``X-Revoker-Degraded`` header, the SDK logs it, and ``on_outcome`` (the metric hook) sees
every outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from revoker.errors import TokenError
from revoker.model import Claims, claims_from_token
from revoker.sdk.client import ApiError, AuthError, ClientError, RevokerClient
from revoker.sdk.mirror import Mirror
from revoker.sdk.runtime import BackgroundLoop
from revoker.sdk.sync import SyncRevokerClient
from revoker.sdk.verify import LocalVerifier, VerifierSettings, unverified_parts

log = logging.getLogger(__name__)

Mode = Literal["mirror", "authz"]
Status = Literal["ok", "refused", "unavailable"]
DEGRADED_HEADER: Final = "X-Revoker-Degraded"
#: How long ``start(wait=True)`` waits for the first snapshot.
START_WAIT_S: Final = 10.0
NO_KEYS: Final = ("this guard has no keys to validate tokens with (give jwks_url, "
                  "public_keys or secret, or use mode='authz'); it can only answer "
                  "is_revoked() for tokens a framework has validated")
#: Seconds between two warnings about degraded answers.
WARN_EVERY_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a request. ``source`` says who answered: ``mirror``, ``service``
    (a stale copy asked ``/v1/check``), ``authz``, or ``none`` (nobody could)."""

    status: Status
    claims: Mapping[str, Any] = field(default_factory=dict)
    header: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    degraded: bool = False
    source: str = "mirror"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def http_status(self) -> int:
        return {"ok": 200, "refused": 401, "unavailable": 503}[self.status]

    def challenge(self) -> str:
        """RFC 6750 ``WWW-Authenticate`` for a refusal: the reason only, never the token,
        and only printable characters (a reason relayed from the service cannot split
        the header)."""
        reason = "".join(ch if ch.isprintable() and ch not in '"\\' else "'"
                         for ch in (self.reason or "invalid token")[:200])
        return f'Bearer error="invalid_token", error_description="{reason}"'


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    return token if scheme.lower() == "bearer" and token else None


class Guard:
    """Build one per process (``start`` it once) and hand it to the integrations."""

    def __init__(self, url: str, key: str | None, *, mode: Mode = "mirror",
                 verifier: VerifierSettings | None = None, fail_mode: str = "closed",
                 max_staleness_s: float = 5.0, timeout_s: float = 2.0,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if mode not in ("mirror", "authz"):
            raise ValueError("mode must be 'mirror' or 'authz'")
        if fail_mode not in ("closed", "open"):
            raise ValueError("fail_mode must be 'closed' or 'open'")
        verifier = verifier or VerifierSettings()
        self.mode = mode
        self.fail_mode = fail_mode
        self.on_outcome = on_outcome
        self.runtime = BackgroundLoop()
        self.sync = SyncRevokerClient(url, key, timeout_s=timeout_s)
        #: Used on the background loop only (the mirror's stream, probes and snapshots).
        self.loop_client = RevokerClient(url, key, timeout_s=timeout_s)
        self.verifier = LocalVerifier(verifier, self.runtime) if verifier.has_keys else None
        self.mirror = Mirror(self.loop_client, max_staleness_s=max_staleness_s,
                             clock=clock) if mode == "mirror" else None
        self._clients: dict[int, RevokerClient] = {}
        self._url, self._key, self._timeout_s = url, key, timeout_s
        self._warned = -WARN_EVERY_S

    # -- life ------------------------------------------------------------------------

    def start(self, *, wait: bool = False, timeout_s: float = START_WAIT_S) -> Guard:
        """Start the background loop (JWKS, mirror). With ``wait``, return once the first
        snapshot is loaded, or after ``timeout_s`` (checks then ask the service)."""
        if self.runtime.running:
            return self
        self.runtime.start()
        self.runtime.call(self._start_loop(), timeout_s=timeout_s + 5.0)
        if wait and self.mirror is not None:
            deadline = time.monotonic() + timeout_s
            while not self.mirror.fresh() and time.monotonic() < deadline:
                time.sleep(0.02)
        return self

    async def _start_loop(self) -> None:
        if self.verifier is not None:
            await self.verifier.start()
        if self.mirror is not None:
            self._mirror_task = self.runtime.loop.create_task(self.mirror.run())

    def close(self) -> None:
        if self.runtime.running:
            self.runtime.call(self._stop_loop(), timeout_s=10.0)
        self.runtime.stop()
        self.sync.close()

    async def _stop_loop(self) -> None:
        task = getattr(self, "_mirror_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.verifier is not None:
            await self.verifier.stop()
        await self.loop_client.close()

    async def aclose(self) -> None:
        """Close the clients opened on the application's loops, then everything else."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self.close()

    def _async_client(self) -> RevokerClient:
        """One client per application loop (an aiohttp session belongs to one loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None:
            client = RevokerClient(self._url, self._key, timeout_s=self._timeout_s)
            self._clients[id(loop)] = client
        return client

    # -- decisions -------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Outcome:
        """For threads (WSGI): never touches an event loop of the caller's."""
        if not token:
            return self._done(Outcome("refused", reason="missing token", source="none"))
        if self.mode == "authz":
            return self._done(self._authz_sync(token))
        verified = self._verify(token)
        if isinstance(verified, Outcome):
            return self._done(verified)
        payload, header, claims = verified
        outcome = self._from_mirror(payload, header, claims)
        if outcome is None:
            outcome = self._service_sync(payload, header, claims)
        return self._done(outcome)

    async def authenticate_async(self, token: str | None) -> Outcome:
        """For event loops (ASGI, aiohttp): the fast path never awaits."""
        if not token:
            return self._done(Outcome("refused", reason="missing token", source="none"))
        if self.mode == "authz":
            return self._done(await self._authz_async(token))
        verified = await self._verify_async(token)
        if isinstance(verified, Outcome):
            return self._done(verified)
        payload, header, claims = verified
        outcome = self._from_mirror(payload, header, claims)
        if outcome is None:
            outcome = await self._service_async(payload, header, claims)
        return self._done(outcome)

    def is_revoked(self, header: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
        """For frameworks that validated the token themselves (flask-jwt-extended,
        simplejwt): True when a revocation matches, or when nobody can tell and the fail
        mode is ``closed``."""
        claims = claims_from_token(dict(payload), dict(header))
        outcome = self._from_mirror(payload, header, claims) if self.mirror else None
        if outcome is None:
            outcome = self._service_sync(payload, header, claims)
        return not self._done(outcome).ok

    def _done(self, outcome: Outcome) -> Outcome:
        if outcome.degraded and time.monotonic() - self._warned >= WARN_EVERY_S:
            self._warned = time.monotonic()
            log.warning("revoker: accepting a token without revocation state (fail mode "
                        "open; %s)", outcome.reason or "service unreachable")
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    # -- mirror mode -----------------------------------------------------------------

    def _verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any], Claims] | Outcome:
        if self.verifier is None:
            raise RuntimeError(NO_KEYS)
        try:
            verified = self.verifier.verify(token)
        except TokenError as exc:
            return Outcome("refused", reason=exc.reason, source="local")
        return verified.payload, verified.header, verified.claims

    async def _verify_async(self, token: str
                            ) -> tuple[dict[str, Any], dict[str, Any], Claims] | Outcome:
        if self.verifier is None:
            raise RuntimeError(NO_KEYS)
        try:
            verified = await self.verifier.verify_async(token)
        except TokenError as exc:
            return Outcome("refused", reason=exc.reason, source="local")
        return verified.payload, verified.header, verified.claims

    def _from_mirror(self, payload: Mapping[str, Any], header: Mapping[str, Any],
                     claims: Claims) -> Outcome | None:
        if self.mirror is None:
            return None
        found = self.mirror.lookup(claims)
        if found is None:
            return None
        if found:
            return Outcome("refused", reason="revoked", source="mirror")
        return Outcome("ok", claims=payload, header=header, source="mirror")

    def _service_sync(self, payload: Mapping[str, Any], header: Mapping[str, Any],
                      claims: Claims) -> Outcome:
        try:
            result = self.sync.check(claims=_claims_body(claims))
        except ClientError as exc:
            return self._unknown(payload, header, exc)
        return _checked(result.revoked, payload, header)

    async def _service_async(self, payload: Mapping[str, Any], header: Mapping[str, Any],
                             claims: Claims) -> Outcome:
        try:
            result = await self._async_client().check(claims=_claims_body(claims))
        except ClientError as exc:
            return self._unknown(payload, header, exc)
        return _checked(result.revoked, payload, header)

    def _unknown(self, payload: Mapping[str, Any], header: Mapping[str, Any],
                 exc: ClientError) -> Outcome:
        """Nobody could say whether the token is revoked. A refused API key or a bad
        request is a configuration error: it never fails open."""
        reason = f"revocation state unknown: {exc}"
        if self.fail_mode == "open" and _unreachable(exc):
            return Outcome("ok", claims=payload, header=header, reason=reason,
                           degraded=True, source="none")
        return Outcome("unavailable", reason=reason, source="none")

    # -- authz mode ------------------------------------------------------------------

    def _authz_sync(self, token: str) -> Outcome:
        try:
            answer = self.sync.authz(token)
        except ClientError as exc:
            return self._authz_unknown(token, exc, self._verify(token) if self.verifier
                                       else None)
        return _from_authz(token, answer.ok, answer.reason, answer.degraded)

    async def _authz_async(self, token: str) -> Outcome:
        try:
            answer = await self._async_client().authz(token)
        except ClientError as exc:
            return self._authz_unknown(token, exc, await self._verify_async(token)
                                       if self.verifier else None)
        return _from_authz(token, answer.ok, answer.reason, answer.degraded)

    def _authz_unknown(self, token: str, exc: ClientError,
                       verified: tuple[dict[str, Any], dict[str, Any], Claims] | Outcome | None
                       ) -> Outcome:
        if isinstance(verified, Outcome):
            return verified  # refused by the local keys: no need of the service for that
        if verified is None:
            return Outcome("unavailable", reason=f"token not verified: {exc}", source="none")
        payload, header, _ = verified
        return self._unknown(payload, header, exc)


def _claims_body(claims: Claims) -> dict[str, Any]:
    body: dict[str, Any] = {"jti": claims.jti, "sub": claims.sub, "sid": claims.sid,
                            "kid": claims.kid, "client_id": claims.client, "iat": claims.iat}
    return {k: v for k, v in body.items() if v is not None}


def _checked(revoked: bool, payload: Mapping[str, Any], header: Mapping[str, Any]) -> Outcome:
    if revoked:
        return Outcome("refused", reason="revoked", source="service")
    return Outcome("ok", claims=payload, header=header, source="service")


def _from_authz(token: str, ok: bool, reason: str | None, degraded: bool) -> Outcome:
    if not ok:
        return Outcome("refused", reason=reason or "invalid token", source="authz")
    header, payload = unverified_parts(token)
    return Outcome("ok", claims=payload, header=header, degraded=degraded, source="authz",
                   reason="the service failed open" if degraded else None)


def _unreachable(exc: ClientError) -> bool:
    """No answer, or the service's own store could not answer (503)."""
    if isinstance(exc, AuthError):
        return False
    if isinstance(exc, ApiError):
        return exc.status in (502, 503, 504)
    return True


__all__: Sequence[str] = ("DEGRADED_HEADER", "Guard", "Outcome", "bearer")
