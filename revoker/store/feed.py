"""One tail of the events stream per worker, fanned out in memory to every subscriber.

Why: a Server-Sent Events stream that did its own blocking read held a store connection
for as long as it stayed open, so a few hundred streams took every connection that checks
and revokes needed. Here one task per worker reads new events on a connection of its own
(``Store.open_tail``) and hands each batch to every subscriber's bounded queue. The feed
never waits for a subscriber: one that falls more than ``queue_events`` behind is marked
lagging and dropped by its stream, and resumes with ``Last-Event-ID``, losing nothing.

A subscriber that asks for history reads it with non-blocking page reads up to the feed's
position at the moment it subscribed (its ``floor``), then continues from its queue, which
holds every event after that floor: no gap, and no event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Final

from revoker.errors import StoreError
from revoker.model import Event, parse_stream_id
from revoker.store.base import EventTail, Store

log = logging.getLogger(__name__)

#: Events per tail read and per history page.
READ_COUNT: Final = 100
#: How long one blocking read waits before it is sent again.
BLOCK_MS: Final = 1000
#: Events a subscriber may have pending before it counts as lagging.
QUEUE_EVENTS: Final = 4096
RETRY_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)


class Lagging(Exception):
    """The subscriber fell too far behind; its stream ends and the client resumes."""


class Subscription:
    """One subscriber's view of the feed: history first (optional), then live events."""

    def __init__(self, feed: EventFeed, *, limit: int) -> None:
        self._feed = feed
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        #: The feed's position when this subscription (re)started; the queue holds every
        #: event after it.
        self.floor = feed.position
        #: The last event handed out; anything at or before it is never handed out again.
        self._sent = parse_stream_id(self.floor)
        self.lagging = False
        self.closed = False

    @property
    def healthy(self) -> bool:
        """False while the feed cannot read the store (it keeps retrying)."""
        return self._feed.healthy

    def push(self, events: Sequence[Event]) -> None:
        """Called by the feed only; never blocks, never grows past the bound."""
        if self.lagging:
            return
        if len(self._queue) + len(events) > self._limit:
            self.lagging = True
            self._queue.clear()
        else:
            self._queue.extend(events)
        self._wake.set()

    def end(self) -> None:
        self.closed = True
        self._wake.set()

    async def history(self, after: str) -> AsyncIterator[list[Event]]:
        """Pages of the events after ``after`` up to ``floor``. A subscriber whose queue
        overflows meanwhile (a long history) starts over from the feed's new position
        instead of being dropped: the pages simply go on further."""
        last = after
        while True:
            floor = parse_stream_id(self.floor)
            while parse_stream_id(last) < floor:
                page = [event for event in await self._feed.store.events(
                    after=last, limit=READ_COUNT) if parse_stream_id(event.id) <= floor]
                if not page:
                    break
                last = page[-1].id
                yield page
            self._sent = max(self._sent, parse_stream_id(last))
            if not self.lagging:
                return
            self._queue.clear()
            self.lagging = False
            self.floor = self._feed.position

    async def next(self, timeout_s: float) -> list[Event] | None:
        """The events queued since the last call, waiting up to ``timeout_s`` for one;
        ``[]`` when quiet, ``None`` once the feed is closed; ``Lagging`` when dropped."""
        if not self._queue and not self.lagging and not self.closed:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
        if self.lagging:
            raise Lagging
        if self.closed:
            return None
        queue = self._queue
        while queue and parse_stream_id(queue[0].id) <= self._sent:
            queue.popleft()
        events = list(queue)
        queue.clear()
        if events:
            self._sent = parse_stream_id(events[-1].id)
        return events


class EventFeed:
    """The per-worker fan-out; started by its first subscriber, stopped by ``close``."""

    def __init__(self, store: Store, *, block_ms: int = BLOCK_MS,
                 queue_events: int = QUEUE_EVENTS) -> None:
        self.store = store
        self.block_ms = block_ms
        self.queue_events = queue_events
        self.position = "0-0"
        self.healthy = True
        self._subscribers: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._tail: EventTail | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(self) -> Subscription:
        """A subscription from the feed's current position. Raises ``StoreError`` when
        the feed is not running yet and its starting position cannot be read."""
        await self._start()
        subscription = Subscription(self, limit=self.queue_events)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def _start(self) -> None:
        if self._task is not None:
            return
        async with self._lock:
            if self._task is not None:
                return
            self.position = await self.store.last_event_id() or "0-0"
            self._tail = self.store.open_tail()
            self._task = asyncio.create_task(self._run(self._tail), name="revoker-event-feed")

    async def close(self) -> None:
        """Stop the tail and end every subscription (their streams then finish)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tail is not None:
            await self._tail.close()
            self._tail = None
        for subscription in list(self._subscribers):
            subscription.end()
        self._subscribers.clear()

    async def _run(self, tail: EventTail) -> None:
        failures = 0
        while True:
            try:
                events = await tail.read(after=self.position, limit=READ_COUNT,
                                         block_ms=self.block_ms)
            except StoreError as exc:
                if self.healthy:
                    log.warning("event feed cannot read the store (%s); retrying", exc)
                self.healthy = False
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
                continue
            except Exception:  # a bug must not silently stop every stream's events
                log.exception("event feed failed")
                self.healthy = False
                await asyncio.sleep(RETRY_S[-1])
                continue
            self.healthy = True
            failures = 0
            if events:
                self.position = events[-1].id
                for subscription in list(self._subscribers):
                    subscription.push(events)
