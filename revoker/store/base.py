"""The store interface: public methods live here once, backends implement primitives.

Following aiocache's layout, the public methods add what every backend needs (a time
bound on every call, translation of backend errors into ``StoreError``) and the
backends implement only the small ``_`` primitives.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from revoker import metrics
from revoker.errors import StoreBusy, StoreError, StoreUnavailable
from revoker.model import Event, Record, parse_stream_id
from revoker.store.keys import Keys

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
    #: Local state kept in step with the store (a mirror), by name: each is ready or not
    #: (``local_ok``), and readiness fails while one is not, though the store answers.
    local: dict[str, Any] = field(default_factory=dict)
    local_ok: bool = True


#: Concurrent calls of the cold lane (listings, event pages, health, start-up checks).
COLD_POOL_SIZE: Final = 4
#: Events one search page examines at most, however few of them match: a filter that
#: matches nothing costs a bounded amount of work per page, and paging continues.
EVENTS_EXAMINED_PER_PAGE: Final = 5000
HEALTH_TIMEOUT_S: Final = 1.0
#: Events read per stream call while searching.
EVENTS_READ_CHUNK: Final = 1000


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What a listing keeps: ``prefix`` is the literal start of the value, ``actor`` an
    exact match. Backends narrow by kind and prefix in the store (SCAN MATCH) where they
    can, and apply the whole filter to what they read."""

    kind: str | None = None
    prefix: str | None = None
    actor: str | None = None

    def matches(self, record: Record) -> bool:
        return ((self.kind is None or record.kind == self.kind)
                and (not self.prefix or record.value.startswith(self.prefix))
                and (self.actor is None or record.actor == self.actor))

    def matches_key(self, kind: str, value: str) -> bool:
        """The part of the filter a key alone can answer."""
        return ((self.kind is None or kind == self.kind)
                and (not self.prefix or value.startswith(self.prefix)))


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Exact matches on the event's record."""

    kind: str | None = None
    value: str | None = None
    actor: str | None = None

    def matches(self, event: Event) -> bool:
        record = event.record
        return ((self.kind is None or record.kind == self.kind)
                and (self.value is None or record.value == self.value)
                and (self.actor is None or record.actor == self.actor))

    @property
    def empty(self) -> bool:
        return self.kind is None and self.value is None and self.actor is None


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of matching events and where the next page starts: the last event examined
    (or the position asked for, when there was nothing after it), so a client that pages
    with ``next`` never misses an event nor sees one twice, even when few match."""

    events: list[Event]
    next: str | None


#: One record as a mirror keeps it: ``kind:value`` (UTF-8), revoked_at, expires_at,
#: issued_before.
ExportRow = tuple[bytes, int, int, int | None]


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the events stream holds: enough for a follower to tell whether events it has
    not read were trimmed away (``added`` is None where the store cannot count)."""

    first_id: str | None
    last_id: str
    added: int | None
    length: int


class Lane:
    """At most ``size`` concurrent store calls (``None``: unbounded).

    Redis backends keep two connection pools, one per lane, so that what can be slow or
    numerous (listings, event pages, health probes) never takes a connection that checks,
    authz and revokes need. A call waits for a slot only within its own deadline; running
    out of slots is local overload, reported as ``StoreBusy``, never as an unreachable
    store (which is what lets fail mode ``open`` accept tokens).
    """

    __slots__ = ("_slots", "name")

    def __init__(self, name: str, size: int | None) -> None:
        self.name = name
        self._slots = asyncio.Semaphore(size) if size else None

    async def acquire(self, deadline: float) -> None:
        slots = self._slots
        if slots is None:
            return
        if not slots.locked():
            await slots.acquire()  # returns at once: no suspension on the hot path
            return
        try:
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        except TimeoutError:
            metrics.STORE_BUSY.labels(lane=self.name).inc()
            raise StoreBusy(f"every {self.name} store connection is in use") from None

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()


class EventTail:
    """One blocking reader of the events stream, on a connection of its own: a reader
    blocked waiting for events must never hold a connection that another call needs.
    A worker has one (``revoker.store.feed``), shared by all its event streams."""

    def __init__(self, store: Store, read: Callable[[str, int, int], Awaitable[list[Event]]],
                 close: Callable[[], Awaitable[None]] | None = None) -> None:
        self._store = store
        self._read = read
        self._close = close

    async def read(self, *, after: str, limit: int, block_ms: int) -> list[Event]:
        """Events strictly after ``after``, waiting up to ``block_ms`` for the first."""
        parse_stream_id(after)
        return await self._store._bounded(self._read(after, limit, block_ms),
                                          operation="events_wait",
                                          timeout_s=self._store.timeout_s + block_ms / 1000)

    async def close(self) -> None:
        if self._close is not None:
            await self._close()


class Store(ABC):
    """A denylist of revocation records plus its audit stream of events."""

    #: Set by backends that are only correct inside one process.
    single_process: bool = False

    def __init__(self, *, prefix: str, timeout_s: float, events_maxlen: int,
                 pool_size: int | None = None, cold_pool_size: int | None = None) -> None:
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.timeout_s = timeout_s
        self.events_maxlen = events_maxlen
        #: Checks, authz and revokes: lookups, upserts, deletes, ``remember_once``.
        self.hot = Lane("hot", pool_size)
        #: Everything else that talks to the store.
        self.cold = Lane("cold", cold_pool_size)

    def key(self, kind: str, value: str) -> str:
        return self.keys.record(kind, value)

    @property
    def events_key(self) -> str:
        return self.keys.events

    async def _bounded(self, awaitable: Awaitable[T], *, operation: str,
                       timeout_s: float | None = None, lane: Lane | None = None) -> T:
        """Every store call is bounded so that a check never hangs on a stuck store, and
        timed here, where it happens: one observation per round trip (a batched lookup
        for many checks is one; a check answered by the mirror is none). With a
        ``lane``, the wait for one of its connections counts against the same bound."""
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + (
            self.timeout_s if timeout_s is None else timeout_s)
        if lane is not None:
            try:
                await lane.acquire(deadline)
            except StoreBusy:
                metrics.STORE_ERRORS.labels(operation=operation).inc()
                _close(awaitable)
                raise
        try:
            async with asyncio.timeout_at(deadline):
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
            if lane is not None:
                lane.release()
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
                                   timeout_s=self._write_timeout(len(records)), lane=self.hot)

    def _write_timeout(self, count: int) -> float:
        """Batches get proportionally more time, within reason."""
        return self.timeout_s * max(1.0, min(40.0, count / 250))

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        if not pairs:
            return []
        return await self._bounded(self._get_many(pairs), operation="lookup", lane=self.hot)

    async def get(self, kind: str, value: str) -> Record | None:
        return (await self.get_many([(kind, value)]))[0]

    async def complete(self, records: list[Record]) -> list[Record]:
        """The records that decided a check, with every detail the answer shows.

        A backend's lookups already return whole records; a layer that answers lookups
        from a summary (the mirror keeps no reason or actor) fetches the details here, so
        that only a revoked answer that shows its records pays for them."""
        return records

    async def delete(self, kind: str, value: str, *, at: int) -> Record | None:
        """Remove a record and append an ``unrevoked`` event; ``None`` when absent."""
        return await self._bounded(self._delete(kind, value, at), operation="delete",
                                   lane=self.hot)

    async def scan(self, *, kind: str | None = None, prefix: str | None = None,
                   actor: str | None = None, cursor: str | None = None,
                   limit: int) -> tuple[list[Record], str | None]:
        """A page of live records, at most ``limit``, filtered (see ``RecordFilter``); the
        cursor is opaque and ``None`` at the end. A page examines a bounded number of keys,
        so a filtered page may hold fewer records (even none) and still have a cursor. A
        cursor this backend could not have returned is the caller's error, found before
        any store call (Redis would refuse it as if it were failing)."""
        if cursor:
            self._check_cursor(cursor)
        wanted = RecordFilter(kind=kind, prefix=prefix or None, actor=actor)
        return await self._bounded(self._scan(wanted, cursor, limit), operation="scan",
                                   timeout_s=self._scan_timeout_s(limit), lane=self.cold)

    def _scan_timeout_s(self, limit: int) -> float:
        return self._write_timeout(max(limit, 1000))

    def scan_budget_s(self, limit: int) -> float:
        """How long a listing page keeps examining keys for matches before it answers with
        what it has and a cursor: well inside the page's own time bound, so a sparse filter
        over a large keyspace yields short pages, never a timeout."""
        return 0.4 * self._scan_timeout_s(limit)

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        """A page of every live record, reduced to what a mirror keeps (see ``ExportRow``),
        for loading one: cheaper than ``scan`` (no ``Record`` is built, and backends read
        in larger batches). The cursor is opaque, ``None`` at the end."""
        return await self._bounded(self._export_page(cursor, count), operation="scan",
                                   timeout_s=self._scan_timeout_s(count), lane=self.cold)

    async def _export_page(self, cursor: str | None,
                           count: int) -> tuple[list[ExportRow], str | None]:
        records, following = await self._scan(RecordFilter(), cursor, count)
        return [(f"{r.kind}:{r.value}".encode(), r.revoked_at, r.expires_at, r.issued_before)
                for r in records], following

    @property
    def names_cheap(self) -> bool:
        """Whether ``export_names`` costs the store much less than ``export_page`` (a key
        listing that reads no value): a mirror's first load then reads the names first
        and the details in the background."""
        return False

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        """A page of the names (``kind:value``) of records, as ``export_page`` pages: a
        record that expires meanwhile may still be named."""
        return await self._bounded(self._export_names(cursor, count), operation="scan",
                                   timeout_s=self._scan_timeout_s(count), lane=self.cold)

    async def _export_names(self, cursor: str | None,
                            count: int) -> tuple[list[bytes], str | None]:
        rows, following = await self._export_page(cursor, count)
        return [row[0] for row in rows], following

    async def size_hint(self) -> int | None:
        """About how many keys the store holds (records and a few others), to size a
        mirror before loading it; None when the backend cannot tell cheaply."""
        return await self._bounded(self._size_hint(), operation="scan", lane=self.cold)

    async def _size_hint(self) -> int | None:
        return None

    async def events(self, *, after: str | None, limit: int) -> list[Event]:
        """A page of events strictly after ``after`` (oldest first), without waiting:
        waiting for new events is the job of the one ``open_tail`` reader per worker."""
        if after is not None:
            parse_stream_id(after)
        return await self._bounded(self._events(after, limit, 0), operation="events",
                                   lane=self.cold)

    async def search_events(self, *, after: str | None, limit: int, kind: str | None = None,
                            value: str | None = None,
                            actor: str | None = None) -> EventPage:
        """Events after ``after`` whose record matches every filter given, oldest first;
        at most ``EVENTS_EXAMINED_PER_PAGE`` events are examined per call."""
        if after is not None:
            parse_stream_id(after)
        wanted = EventFilter(kind=kind, value=value, actor=actor)
        return await self._bounded(self._search(after, limit, wanted), operation="events",
                                   timeout_s=self._write_timeout(EVENTS_EXAMINED_PER_PAGE),
                                   lane=self.cold)

    async def _search(self, after: str | None, limit: int, wanted: EventFilter) -> EventPage:
        budget = limit if wanted.empty else max(limit, EVENTS_EXAMINED_PER_PAGE)
        found: list[Event] = []
        position = after
        while budget > 0 and len(found) < limit:
            count = min(budget, EVENTS_READ_CHUNK)
            page = await self._events(position, count, 0)
            for event in page:
                position = event.id
                budget -= 1
                if wanted.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
            if len(page) < count:
                break
        return EventPage(found, position)

    async def last_event_id(self) -> str | None:
        return await self._bounded(self._last_event_id(), operation="events", lane=self.cold)

    async def stream_state(self) -> StreamState | None:
        """The events stream's extent and count; None when no event was ever written."""
        return await self._bounded(self._stream_state(), operation="events", lane=self.cold)

    def open_tail(self) -> EventTail:
        """A blocking reader of new events; close it when done."""
        return EventTail(self, self._events)

    async def remember_once(self, key_suffix: str, expires_at: int) -> bool:
        """Mark ``{prefix}{key_suffix}`` as seen until ``expires_at``; True the first time,
        False while it is still remembered (replay protection for logout tokens and SETs).
        Atomic: of two concurrent callers, exactly one gets True."""
        return await self._bounded(self._remember_once(self.keys.replay(key_suffix), expires_at),
                                   operation="remember", lane=self.hot)

    async def _remember_once(self, key: str, expires_at: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot remember ids")

    async def health(self) -> StoreHealth:
        """Readiness asks a heavier question (INFO, on the cold pool) than a check does, and
        a load balancer takes a pod out of rotation on its answer: a busy moment must not
        flap it, while a hung Redis still fails it within ``HEALTH_TIMEOUT_S``."""
        try:
            return await self._bounded(self._health(), operation="health", lane=self.cold,
                                       timeout_s=max(self.timeout_s, HEALTH_TIMEOUT_S))
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
    def _check_cursor(self, cursor: str) -> None:
        """Raise ``InvalidInput`` unless ``cursor`` has the exact shape this backend's
        listings return, within the bounds its store accepts."""

    @abstractmethod
    async def _scan(self, wanted: RecordFilter, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]: ...

    @abstractmethod
    async def _events(self, after: str | None, limit: int, block_ms: int) -> list[Event]: ...

    @abstractmethod
    async def _last_event_id(self) -> str | None: ...

    @abstractmethod
    async def _stream_state(self) -> StreamState | None: ...

    @abstractmethod
    async def _health(self) -> StoreHealth: ...


def _close(awaitable: Awaitable[Any]) -> None:
    """A call refused before it started: close its coroutine so it is not reported as
    never awaited."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()


_TIMERS: dict[str, Any] = {}


def _timer(operation: str) -> Any:
    """The histogram child of an operation, resolved once: ``labels()`` costs more than the
    observation itself, and lookups run on every strict-mode check."""
    timer = _TIMERS.get(operation)
    if timer is None:
        timer = _TIMERS[operation] = metrics.STORE_DURATION.labels(operation=operation)
    return timer
