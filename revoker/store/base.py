"""The store interface: public methods live here once, backends implement primitives.

Following aiocache's layout, the public methods add what every backend needs (a time
bound on every call, translation of backend errors into ``StoreError``) and the
backends implement only the small ``_`` primitives.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from revoker import metrics
from revoker.errors import StoreError, StoreUnavailable
from revoker.model import Event, Record

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Upserted:
    """Outcome of a revoke: the record as now stored and whether it is new."""

    record: Record
    created: bool


@dataclass(slots=True)
class StoreHealth:
    """What ``/readyz`` reports; ``warnings`` are shown but do not fail readiness."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Store(ABC):
    """A denylist of revocation records plus its audit stream of events."""

    #: Set by backends that are only correct inside one process.
    single_process: bool = False

    def __init__(self, *, prefix: str, timeout_s: float, events_maxlen: int) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.events_maxlen = events_maxlen

    def key(self, kind: str, value: str) -> str:
        return f"{self.prefix}{kind}:{value}"

    @property
    def events_key(self) -> str:
        return f"{self.prefix}events"

    async def _bounded(self, awaitable: Awaitable[T], *, operation: str,
                       timeout_s: float | None = None) -> T:
        """Every store call is bounded so that a check never hangs on a stuck store, and
        timed here, where it happens: one observation per round trip (a coalesced MGET
        for many checks is one lookup; a check answered by the mirror is none)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s if timeout_s is None else timeout_s):
                return await awaitable
        except TimeoutError as exc:
            metrics.STORE_ERRORS.labels(operation=operation).inc()
            raise StoreUnavailable("store did not answer in time") from exc
        except StoreError:
            metrics.STORE_ERRORS.labels(operation=operation).inc()
            raise
        except Exception as exc:
            error = self._translate(exc)
            metrics.STORE_ERRORS.labels(operation=operation).inc()
            raise error from exc
        finally:
            _timer(operation).observe(time.perf_counter() - started)

    def _translate(self, exc: Exception) -> StoreError:
        """Backends map their own errors; anything unknown is re-raised as-is."""
        raise exc

    # -- public API --------------------------------------------------------------------

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and run start-up checks; raise ConfigError on an unsafe store."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def upsert(self, record: Record, *, at: int) -> Upserted:
        """Store ``record``, or merge it into an existing one (later expiry and cutoff win)
        atomically, and append a ``revoked`` event."""
        results = await self.upsert_many([record], at=at)
        return results[0]

    async def upsert_many(self, records: Sequence[Record], *, at: int) -> list[Upserted]:
        if not records:
            return []
        return await self._bounded(self._upsert_many(records, at), operation="upsert",
                                   timeout_s=self._write_timeout(
            len(records)))

    def _write_timeout(self, count: int) -> float:
        """Batches get proportionally more time, within reason."""
        return self.timeout_s * max(1.0, min(40.0, count / 250))

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        if not pairs:
            return []
        return await self._bounded(self._get_many(pairs), operation="lookup")

    async def get(self, kind: str, value: str) -> Record | None:
        return (await self.get_many([(kind, value)]))[0]

    async def delete(self, kind: str, value: str, *, at: int) -> Record | None:
        """Remove a record and append an ``unrevoked`` event; ``None`` when absent."""
        return await self._bounded(self._delete(kind, value, at), operation="delete")

    async def scan(self, *, kind: str | None, cursor: str | None,
                   limit: int) -> tuple[list[Record], str | None]:
        """A page of live records; the cursor is opaque and ``None`` at the end."""
        return await self._bounded(self._scan(kind, cursor, limit), operation="scan",
                                   timeout_s=self._write_timeout(limit))

    async def events(self, *, after: str | None, limit: int,
                     block_ms: int = 0) -> list[Event]:
        """Events strictly after ``after`` (oldest first); ``block_ms`` waits for new ones."""
        timeout = self.timeout_s + block_ms / 1000
        operation = "events_wait" if block_ms > 0 else "events"
        return await self._bounded(self._events(after, limit, block_ms), operation=operation,
                                   timeout_s=timeout)

    async def last_event_id(self) -> str | None:
        return await self._bounded(self._last_event_id(), operation="events")

    async def remember_once(self, key_suffix: str, expires_at: int) -> bool:
        """Mark ``{prefix}{key_suffix}`` as seen until ``expires_at``; True the first time,
        False while it is still remembered (replay protection for logout tokens and SETs).
        Atomic: of two concurrent callers, exactly one gets True."""
        return await self._bounded(self._remember_once(self.prefix + key_suffix, expires_at),
                                   operation="remember")

    async def _remember_once(self, key: str, expires_at: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot remember ids")

    async def health(self) -> StoreHealth:
        try:
            return await self._bounded(self._health(), operation="health")
        except StoreError as exc:
            return StoreHealth(ok=False, detail={"error": str(exc) or type(exc).__name__})

    # -- primitives --------------------------------------------------------------------

    @abstractmethod
    async def _upsert_many(self, records: Sequence[Record], at: int) -> list[Upserted]: ...

    @abstractmethod
    async def _get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]: ...

    @abstractmethod
    async def _delete(self, kind: str, value: str, at: int) -> Record | None: ...

    @abstractmethod
    async def _scan(self, kind: str | None, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]: ...

    @abstractmethod
    async def _events(self, after: str | None, limit: int, block_ms: int) -> list[Event]: ...

    @abstractmethod
    async def _last_event_id(self) -> str | None: ...

    @abstractmethod
    async def _health(self) -> StoreHealth: ...


_TIMERS: dict[str, Any] = {}


def _timer(operation: str) -> Any:
    """The histogram child of an operation, resolved once: ``labels()`` costs more than the
    observation itself, and lookups run on every strict-mode check."""
    timer = _TIMERS.get(operation)
    if timer is None:
        timer = _TIMERS[operation] = metrics.fast_histogram(
            metrics.STORE_DURATION.labels(operation=operation))
    return timer
