"""A local mirror of the denylist, so that checks are answered from memory.

``REVOKER_CHECK_MODE=mirror``: each worker wraps its store in a ``MirrorStore``, which
loads a snapshot of every record (the store's own listing) and then follows the events
stream (the store's blocking tail) from the position read *before* the snapshot, so
nothing written during the load is lost (replaying an event the snapshot already holds is
harmless: events carry the whole record). It uses only the wrapped store's public
methods, so it follows any backend: Redis, Sentinel or Cluster.

Consistency contract (see docs/performance.md):
- in sync, a revoke acknowledged 2xx reaches every worker as soon as the store hands the
  event to the blocked tail (milliseconds);
- the mirror answers only while it has heard from the store within ``max_lag_s``; past
  that, after an error, or while (re)loading, lookups go to the wrapped store (strict
  mode), which raises ``StoreUnavailable`` when it cannot answer, so the fail mode
  applies; readiness fails while the mirror is not in sync;
- a gap (the stream trimmed past our position, deleted or recreated) triggers a full
  resync.

Records are kept as JSON bytes keyed by ``kind:value`` and parsed only on a hit (about 1%
of checks), which keeps the per-entry cost near that of the bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from revoker.errors import StoreError
from revoker.model import Event, Record, parse_stream_id
from revoker.store.base import EventTail, Store, StoreHealth, StreamState
from revoker.store.layer import StoreLayer

log = logging.getLogger(__name__)

SNAPSHOT_PAGE: Final = 1000
READ_COUNT: Final = 1000
BUCKET_S: Final = 60
#: After a read that returned events, the tail waits this long before reading again, so
#: that under a stream of revokes each read carries a batch (every worker reads every
#: event, and a round trip costs far more than an entry). The first event after a quiet
#: spell is read at once; under load this adds at most this much to propagation.
TAIL_PAUSE_S: Final = 0.005
#: How often the tail also asks whether events were trimmed past its position.
GAP_CHECK_S: Final = 0.1
RETRY_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Position:
    """Where the mirror is in the stream: the last id applied and how many entries the
    stream had ever received up to it (``None`` where the store cannot count)."""

    last_id: str
    added: int | None


class Gap(Exception):
    """Events were lost between our position and the stream: resync from a snapshot."""


class Table:
    """The mirrored records and an expiry index of coarse buckets (no per-entry heap)."""

    __slots__ = ("buckets", "entries", "swept")

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.buckets: dict[int, list[str]] = {}
        self.swept = 0

    def put(self, record: Record, now: float) -> None:
        key = f"{record.kind}:{record.value}"
        if record.expires_at <= now:
            self.entries.pop(key, None)
            return
        self.entries[key] = record.to_json().encode()
        self.buckets.setdefault(record.expires_at // BUCKET_S, []).append(key)

    def sweep(self, now: float) -> int:
        """Drop expired entries of every bucket that is wholly in the past."""
        removed = 0
        current = int(now) // BUCKET_S
        if current <= self.swept:
            return 0
        self.swept = current
        for bucket in [b for b in self.buckets if b < current]:
            for key in self.buckets.pop(bucket):
                raw = self.entries.get(key)
                if raw is not None and Record.from_json(raw).expires_at <= now:
                    del self.entries[key]
                    removed += 1
        return removed


class MirrorStore(StoreLayer):
    """The wrapped store, with lookups answered from a local copy while it is in sync."""

    def __init__(self, inner: Store, *, clock: Callable[[], float] = time.time,
                 block_ms: int = 1000, max_lag_s: float | None = None) -> None:
        super().__init__(inner)
        self.clock = clock
        self.block_ms = block_ms
        self.max_lag_s = max_lag_s if max_lag_s is not None else block_ms / 1000 + 1.0
        self.table = Table()
        self.position = Position("0-0", 0)
        self.synced = False
        self.resyncs = 0
        self.last_error: str | None = None
        self._fresh_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._tail: EventTail | None = None
        self._stopping = False

    # -- the hot path -----------------------------------------------------------------

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        """Answer from memory while in sync; otherwise ask the store (which may fail)."""
        if not self.in_sync:
            return await self.inner.get_many(pairs)
        entries = self.table.entries
        now = self.clock()
        found: list[Record | None] = []
        for kind, value in pairs:
            raw = entries.get(f"{kind}:{value}")
            if raw is None:
                found.append(None)
                continue
            record = Record.from_json(raw)
            found.append(record if record.expires_at > now else None)
        return found

    @property
    def in_sync(self) -> bool:
        return self.synced and time.monotonic() <= self._fresh_until

    def state(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"in_sync": self.in_sync, "entries": len(self.table.entries),
                                  "last_event_id": self.position.last_id,
                                  "resyncs": self.resyncs}
        if self.last_error and not self.in_sync:
            detail["error"] = self.last_error
        return detail

    async def health(self) -> StoreHealth:
        health = await self.inner.health()
        health.local["mirror"] = self.state()
        health.local_ok = health.local_ok and self.in_sync
        return health

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; the load then runs in the background (lookups read the store
        until it is done)."""
        await self.inner.open()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        await self.inner.close()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="revoker-mirror")

    async def stop(self) -> None:
        """Cancel the sync task. The flag matters too: a cancellation that lands while a
        client is inside its own read timeout can come out as an error, which the loop
        would otherwise treat as an outage and retry."""
        self._stopping = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it at exit
        if self._tail is not None:
            await self._tail.close()
            self._tail = None

    async def _run(self) -> None:
        """Load, tail until something breaks, then reload or reconnect; forever."""
        failures = 0
        need_snapshot = not self.synced
        while not self._stopping:
            try:
                if need_snapshot:
                    await self.resync()
                    need_snapshot = False
                await self._follow()
            except Gap as exc:
                self._lose(f"gap: {exc}")
                need_snapshot = True
                failures = 0
            except (StoreError, OSError, TimeoutError) as exc:
                self._lose(f"store: {type(exc).__name__}")
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently freeze the mirror in sync
                log.exception("mirror sync failed")
                self._lose("internal error")
                need_snapshot = True
                await asyncio.sleep(RETRY_S[-1])

    def _lose(self, reason: str) -> None:
        if self.synced:
            log.warning("mirror out of sync (%s); checks read the store until it recovers",
                        reason)
        self.synced = False
        self.last_error = reason

    # -- loading ----------------------------------------------------------------------

    async def resync(self) -> None:
        """Snapshot every record, replay what happened meanwhile, then swap it in."""
        self.synced = False
        state = await self.inner.stream_state()
        position = Position("0-0", 0) if state is None else Position(state.last_id,
                                                                        state.added)
        table = Table()
        now = self.clock()
        cursor: str | None = None
        while True:
            records, cursor = await self.inner.scan(cursor=cursor, limit=SNAPSHOT_PAGE)
            for record in records:
                table.put(record, now)
            if cursor is None:
                break
        position = await self._catch_up(table, position)
        self.table, self.position = table, position
        self.resyncs += 1
        self._mark_fresh()
        self.synced = True
        self.last_error = None
        log.info("mirror loaded %d records up to event %s", len(table.entries), position.last_id)

    async def _catch_up(self, table: Table, position: Position) -> Position:
        while True:
            events = await self.inner.events(after=position.last_id, limit=READ_COUNT)
            position = self._apply(table, events, position)
            if len(events) < READ_COUNT:
                return position

    # -- following --------------------------------------------------------------------

    async def _follow(self) -> None:
        """Blocking reads of new events, with a check for a gap at most every
        ``GAP_CHECK_S``: a busy stream must not cost a second call per batch."""
        if self._tail is None:
            self._tail = self.inner.open_tail()
        checked = 0.0
        while not self._stopping:
            if time.monotonic() - checked >= GAP_CHECK_S:
                self._check_gap(await self.inner.stream_state())
                checked = time.monotonic()
            events = await self._tail.read(after=self.position.last_id, limit=READ_COUNT,
                                           block_ms=self.block_ms)
            self.position = self._apply(self.table, events, self.position)
            self._mark_fresh()
            self.synced = True
            self.table.sweep(self.clock())
            if events:  # a busy stream: let events gather rather than read them one by one
                await asyncio.sleep(TAIL_PAUSE_S)

    def _mark_fresh(self) -> None:
        self._fresh_until = time.monotonic() + self.max_lag_s

    def _check_gap(self, theirs: StreamState | None) -> None:
        """Raise ``Gap`` when the stream no longer holds every event after ours."""
        ours = self.position
        if theirs is None:
            if ours.last_id != "0-0":
                raise Gap("the events stream was deleted")
            return
        if parse_stream_id(theirs.last_id) < parse_stream_id(ours.last_id):
            raise Gap("the events stream was reset")
        if theirs.added is None or ours.added is None:
            return
        if theirs.added < ours.added:
            raise Gap("the events stream was recreated")
        if theirs.last_id == ours.last_id and theirs.added != ours.added:
            raise Gap("events were missed")
        first = None if theirs.first_id is None else parse_stream_id(theirs.first_id)
        if (first is None or first > parse_stream_id(ours.last_id)) and \
                theirs.added - ours.added > theirs.length:
            raise Gap("the events stream was trimmed past our position")

    def _apply(self, table: Table, events: list[Event], position: Position) -> Position:
        """Every worker applies every event: this is the mirror's share of each revoke."""
        if not events:
            return position
        now = self.clock()
        for event in events:
            record = event.record
            if event.type == "unrevoked":
                table.entries.pop(f"{record.kind}:{record.value}", None)
            else:
                table.put(record, now)
        added = None if position.added is None else position.added + len(events)
        return Position(events[-1].id, added)
