"""JWKS fetching and caching: one key cache per JWKS URL, shared by every route.

``JwksKeys`` serves one URL from memory and reads it again on a schedule. A kid that is
not in memory is the normal sign of a key rotation at the identity provider, so it
triggers an immediate read: ``refetch`` (awaited by routes whose senders never retry,
such as back-channel logout) waits for it, bounded by ``refetch_wait_s``; ``get`` (the
synchronous path of ``/v1/authz``) only starts it. Either way:

- at most one read is in flight per URL: concurrent unknown kids share it;
- reads triggered by unknown kids start at most once per ``min_refetch_s``, so a flood
  of random kids costs the identity provider one request per interval and each refused
  request answers at once. Scheduled reads do not count against that interval: a key
  rotated just after a scheduled read must still be found by the first token it signs;
- a failed read keeps the last good key set, so an identity provider outage does not
  stop validation.

``KeySets`` hands out the one ``JwksKeys`` of each URL, so the access-token validator and
every trusted issuer reading the same JWKS share one cache, one schedule and one limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from revoker.tokens.keys import key_fits, parse_jwks, single_fitting, thumbprint

log = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1024 * 1024
#: Retry delay after a failed scheduled read, at least (a zero interval must not spin).
MIN_RETRY_S: Final = 1.0

Keys = dict[str, tuple[Any, str | None]]


class JwksKeys:
    """One JWKS URL, served from memory; see the module docstring for when it is read."""

    def __init__(self, url: str, *, refresh_s: float, min_refetch_s: float = 5.0,
                 refetch_wait_s: float = 2.0, timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.min_refetch_s = min_refetch_s
        self.refetch_wait_s = refetch_wait_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.fetches = 0
        self._keys: Keys = {}
        self._listeners: list[Callable[[], None]] = []
        self._last_on_demand = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def get(self, kid: str | None, alg: str) -> Any | None:
        """The key, or None; a kid not in memory starts a read (never waited for here)."""
        if kid is None:
            return single_fitting([k for k, a in self._keys.values() if a in (None, alg)], alg)
        entry = self._keys.get(kid)
        if entry is None:
            self._on_demand()
            return None
        key, jwk_alg = entry
        if jwk_alg is not None and jwk_alg != alg:
            return None
        return key if key_fits(key, alg) else None

    async def refetch(self) -> bool:
        """Wait (at most ``refetch_wait_s``) for a read triggered by an unknown kid, or for
        the read already in flight. False when the interval forbids a read or it did not
        finish in time; the caller then refuses the token."""
        task = self._on_demand()
        if task is None:
            return False
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=self.refetch_wait_s)
        except TimeoutError:
            return False

    def _on_demand(self) -> asyncio.Task[bool] | None:
        """The read in flight, or a new one when the interval allows; None otherwise."""
        if self._inflight is not None:
            return self._inflight
        if self._session is None or not _in_loop():
            return None  # not started (or stopped): no loop to read on
        now = self.clock()
        if now - self._last_on_demand < self.min_refetch_s:
            return None
        self._last_on_demand = now
        return self._start_read("unknown_kid")

    def _start_read(self, trigger: str) -> asyncio.Task[bool]:
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._read(trigger), name="jwks-read")
        return self._inflight

    async def _read(self, trigger: str) -> bool:
        log.debug("reading the JWKS from %s (%s)", self.url, trigger)
        try:
            return await self.refresh()
        finally:
            self._inflight = None

    async def start(self) -> None:
        """First read, bounded by the timeout; a failure is logged, not fatal."""
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        await self._start_read("start")
        self._task = asyncio.create_task(self._run(), name="jwks-refresh")

    async def stop(self) -> None:
        for task in (self._task, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._inflight = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        ok = True
        while True:
            delay = self.refresh_s if ok else min(self.refresh_s,
                                                  max(self.min_refetch_s, MIN_RETRY_S))
            await asyncio.sleep(delay)
            ok = await asyncio.shield(self._start_read("schedule"))

    async def refresh(self) -> bool:
        """Read once; True when a key set was read (changed or not)."""
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed (%s); keeping %d cached keys",
                        self.url, exc or type(exc).__name__, len(self._keys))
            return False
        if _fingerprint(keys) != _fingerprint(self._keys):
            log.info("JWKS from %s: %d keys (%s)", self.url, len(keys), ", ".join(sorted(keys)))
            self._keys = keys
            for listener in self._listeners:
                listener()
        return True

    async def _fetch(self) -> Any:
        if self._session is None:
            raise ValueError("not started")
        async with self._session.get(self.url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            raw = await resp.content.read(MAX_JWKS_BYTES + 1)
        if len(raw) > MAX_JWKS_BYTES:
            raise ValueError("the JWKS is larger than 1 MiB")
        return json.loads(raw)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _fingerprint(keys: Keys) -> set[tuple[str, str, str | None]]:
    return {(kid, thumbprint(key), alg) for kid, (key, alg) in keys.items()}


class KeySets:
    """The one ``JwksKeys`` of each URL; started and stopped together.

    Several owners (the access-token validator, the trusted issuers) may ``start`` and
    ``stop`` it: the key sets run from the first ``start`` to the last ``stop``, and a URL
    added while running is started by the next ``start``.
    """

    def __init__(self, *, refresh_s: float, min_refetch_s: float, refetch_wait_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.min_refetch_s = min_refetch_s
        self.refetch_wait_s = refetch_wait_s
        self.clock = clock
        self._by_url: dict[str, JwksKeys] = {}
        self._users = 0

    def __len__(self) -> int:
        return len(self._by_url)

    def for_url(self, url: str) -> JwksKeys:
        keys = self._by_url.get(url)
        if keys is None:
            keys = JwksKeys(url, refresh_s=self.refresh_s, min_refetch_s=self.min_refetch_s,
                            refetch_wait_s=self.refetch_wait_s, clock=self.clock)
            self._by_url[url] = keys
        return keys

    async def start(self) -> None:
        """First reads run together: one slow provider delays start-up once, not N times."""
        self._users += 1
        await asyncio.gather(*(keys.start() for keys in self._by_url.values()))

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            for keys in self._by_url.values():
                await keys.stop()
