"""A copy of the service's denylist inside the application's process, fed over HTTP.

How it stays right:

- it loads ``GET /v1/denylist`` (every active record) and follows ``/v1/events/stream``
  from the ``X-Revoker-Position`` read before that snapshot, so nothing that happened
  during the load is missed; on a reconnection it resumes with ``Last-Event-ID``;
- before every (re)connection, and every ``probe_interval_s`` while connected, it asks
  ``HEAD /v1/denylist`` where the events are. An event id older than ours (the service
  lost its events: a new store, a restore) or an oldest retained event newer than ours
  (events were trimmed while we were away) is a gap: it loads a full snapshot again;
- a probe that found the service at event ``P`` at time ``t`` proves, once we have
  applied ``P``, that the copy holds every revocation acknowledged before ``t``.
  ``lookup`` answers only while the last such proof is at most ``max_staleness_s`` old;
  otherwise it returns None and the caller asks the service (``POST /v1/check``), whose
  answer or failure then decides (fail mode). A stream that stays behind a probe for
  longer than that is dropped and opened again;
- records expire locally at their ``expires_at`` (the same instant Redis drops them).

Memory: each record is a ``revoker.model.Record`` (slotted, 7 fields) in a per-kind dict
keyed by its value, plus one reference in a coarse expiry index. Measured with
tracemalloc on CPython 3.11 (``bench/sdk.py``, ``tests/sdk/test_table.py``), records
decoded from the service's JSON: about 330 bytes per record with a 32-character jti and
an actor (actors are interned: there are few of them), about 390 with a reason as well;
100,000 revocations cost 33-39 MB.

The mirror runs on the SDK's background loop (``revoker.sdk.runtime``), so a WSGI
application needs no event loop and an ASGI one is not slowed by it; ``lookup`` is a
few dict reads and safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import aiohttp

from revoker.model import KINDS, Claims, Event, Record, parse_stream_id
from revoker.sdk.client import ClientError, DenylistPosition, RevokerClient

log = logging.getLogger(__name__)

BUCKET_S: Final = 60
RETRY_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
ZERO: Final = "0-0"


class Gap(Exception):
    """Our copy may have missed events: load a snapshot again."""


def _id(text: str) -> tuple[int, int]:
    return parse_stream_id(text, field="event id")


class Table:
    """The records, one dict per kind keyed by value, and an expiry index of coarse
    buckets (a sweep visits only buckets that have come due, never every record)."""

    __slots__ = ("buckets", "by_kind", "swept")

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, Record]] = {kind: {} for kind in KINDS}
        self.buckets: dict[int, list[Record]] = {}
        self.swept = 0

    def __len__(self) -> int:
        return sum(len(table) for table in self.by_kind.values())

    def put(self, record: Record, now: float) -> None:
        table = self.by_kind.get(record.kind)
        if table is None:
            return  # a kind this SDK does not know cannot match any token it reads
        if record.expires_at <= now:
            table.pop(record.value, None)
            return
        table[record.value] = record
        self.buckets.setdefault(record.expires_at // BUCKET_S, []).append(record)

    def remove(self, kind: str, value: str) -> None:
        table = self.by_kind.get(kind)
        if table is not None:
            table.pop(value, None)

    def sweep(self, now: float) -> int:
        """Drop records past their expiry; returns how many. Runs on the mirror's loop."""
        due = int(now) // BUCKET_S
        dropped = 0
        for bucket in [b for b in self.buckets if b < due]:
            for record in self.buckets.pop(bucket):
                table = self.by_kind[record.kind]
                if table.get(record.value) is record and record.expires_at <= now:
                    del table[record.value]
                    dropped += 1
        self.swept = due
        return dropped

    def match(self, claims: Claims, now: float) -> list[Record]:
        """The records that refuse a token with these claims: the service's own rule
        (``Record.matches_iat``), with expiry applied here rather than by Redis."""
        found: list[Record] = []
        by_kind = self.by_kind
        for kind, value in (("jti", claims.jti), ("sub", claims.sub), ("sid", claims.sid),
                            ("kid", claims.kid), ("client", claims.client)):
            if value is not None:
                record = by_kind[kind].get(value)
                if record is not None and record.expires_at > now \
                        and record.matches_iat(claims.iat):
                    found.append(record)
        return found


class Mirror:
    """See the module docstring. ``run()`` is the whole life of the copy; ``lookup`` and
    ``fresh`` may be called from any thread."""

    def __init__(self, client: RevokerClient, *, max_staleness_s: float = 5.0,
                 probe_interval_s: float | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_staleness_s <= 0:
            raise ValueError("max_staleness_s must be positive")
        self.client = client
        self.max_staleness_s = max_staleness_s
        self.probe_interval_s = probe_interval_s or max_staleness_s / 4
        self.clock = clock
        self.monotonic = monotonic
        self.table = Table()
        #: The last event applied (or the snapshot's position before any).
        self.position = ZERO
        self.resyncs = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.synced = False
        self._confirmed_at = -float("inf")
        #: Probes not yet caught up with: (monotonic time of the probe, its position).
        self._pending: deque[tuple[float, tuple[int, int]]] = deque()

    # -- what applications call -----------------------------------------------------

    @property
    def staleness_s(self) -> float:
        """Seconds since the copy was last proven to hold every acknowledged revocation."""
        return self.monotonic() - self._confirmed_at

    def fresh(self) -> bool:
        return self.synced and self.monotonic() - self._confirmed_at <= self.max_staleness_s

    def lookup(self, claims: Claims) -> list[Record] | None:
        """The matching records, or None when the copy is too stale to answer."""
        if not self.synced or self.monotonic() - self._confirmed_at > self.max_staleness_s:
            return None
        return self.table.match(claims, self.clock())

    def __len__(self) -> int:
        return len(self.table)

    # -- the copy's life -------------------------------------------------------------

    async def run(self) -> None:
        """Load, follow, and start over after a gap or a failure, until cancelled."""
        failures = 0
        while True:
            try:
                if not self.synced:
                    await self.resync()
                await self._follow()
                failures = 0
                await asyncio.sleep(RETRY_S[0])  # a stream the service ended: not in a spin
            except Gap as exc:
                log.warning("revocation mirror: %s; loading the denylist again", exc)
                self.synced = False
            except (ClientError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                if failures == 0:
                    log.warning("revocation mirror: %s; retrying", self.last_error)
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            self.reconnects += 1

    async def resync(self) -> None:
        """A whole new copy, swapped in only once complete."""
        table = Table()
        now = self.clock()
        started = self.monotonic()
        position = await self.client.denylist(lambda record: table.put(record, now))
        self.table, self.position = table, position.latest
        self._pending.clear()
        self._confirmed_at = started  # the snapshot holds everything acknowledged before
        self.resyncs += 1
        self.synced = True
        self.last_error = None
        log.info("revocation mirror loaded %d records up to event %s", len(table),
                 position.latest)

    async def _follow(self) -> None:
        """One connection of the events stream, watched by the prober."""
        await self.probe(reconnecting=True)
        stream = asyncio.ensure_future(self._stream())
        try:
            while not stream.done():
                done, _ = await asyncio.wait({stream}, timeout=self.probe_interval_s)
                if done:
                    break
                await self.probe(reconnecting=False)
                self._check_behind()
            stream.result()
        finally:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream

    async def _stream(self) -> None:
        async for event in self.client.stream_once(self.position):
            self.apply(event)

    async def probe(self, *, reconnecting: bool) -> DenylistPosition:
        """Where the service is: a gap check, and the proof of freshness (see above)."""
        started = self.monotonic()
        theirs = await self.client.denylist_position()
        ours = _id(self.position)
        latest = _id(theirs.latest)
        if latest < ours:
            raise Gap(f"the service's newest event {theirs.latest} is older than ours")
        if reconnecting and theirs.oldest is not None and _id(theirs.oldest) > ours:
            raise Gap("events after ours are no longer held by the service")
        if latest <= ours:
            self.confirm(started)
        else:
            self._pending.append((started, latest))
        now = self.clock()
        if int(now) // BUCKET_S > self.table.swept:
            self.table.sweep(now)
        return theirs

    def confirm(self, at: float) -> None:
        """Record that the copy held every revocation acknowledged before ``at``."""
        self._confirmed_at = max(self._confirmed_at, at)

    def _check_behind(self) -> None:
        """A stream still behind a probe older than the staleness bound is stuck (a dead
        connection that never closed): drop it, the next one resumes where we are."""
        if self._pending and self.monotonic() - self._pending[0][0] > self.max_staleness_s:
            self._pending.clear()
            raise TimeoutError("the events stream fell behind; reconnecting")

    def apply(self, event: Event) -> None:
        """Every event carries the whole stored record: a revoke puts it (a repeat merges
        into the same record), an unrevoke removes it."""
        event_id = _id(event.id)
        if event_id <= _id(self.position):
            raise Gap(f"event {event.id} is not after our position {self.position}")
        now = self.clock()
        if event.type == "unrevoked":
            self.table.remove(event.record.kind, event.record.value)
        else:
            self.table.put(event.record, now)
        self.position = event.id
        while self._pending and self._pending[0][1] <= event_id:
            self.confirm(self._pending.popleft()[0])
        if int(now) // BUCKET_S > self.table.swept:
            self.table.sweep(now)

    def describe(self) -> dict[str, object]:
        """For a health endpoint of the application."""
        return {"synced": self.synced, "fresh": self.fresh(), "records": len(self.table),
                "position": self.position, "staleness_s": round(self.staleness_s, 3),
                "resyncs": self.resyncs, "last_error": self.last_error}
