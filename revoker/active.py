"""``revoker_revocations_active{kind}``: counted in the background, never per scrape.

Neither Redis nor the memory store can count keys by kind in O(1), and a SCAN per scrape
would make every Prometheus scrape cost O(records) on Redis. Instead one process (the
only worker, or worker 0 of several) walks the records page by page in the background,
pausing after each page for nine times as long as the page took, so that the walk keeps
to a tenth of the time while it runs instead of in bursts (at ten million records a burst
took a third of a core for minutes, right when a restarted worker 0 had to serve), and
publishes the counts when a walk completes. The gauge is therefore a count as of
``revoker_revocations_active_sampled_timestamp_seconds``: at most ``interval`` plus one walk
old. A walk that fails (store down) keeps the previous values and their older timestamp,
so staleness is visible rather than hidden.

The walk reads the records' names only (``kind:value``; for Redis a bare ``SCAN``: no
value read, no record built), since a key names its kind. That worker serves requests
between pages, and a page of 1,000 full records held its event loop for 24-51 ms of
parsing; a page of names holds it for about 1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from revoker import metrics
from revoker.errors import StoreError
from revoker.model import KINDS
from revoker.store import Store
from revoker.web.state import STORE

log = logging.getLogger(__name__)

PAGE_SIZE: Final = 1000
#: The shortest pause between two pages.
PAGE_PAUSE_S: Final = 0.005
INTERVAL_S: Final = 60.0
#: A walk uses at most 1/WALK_SHARE of the time while it runs: after a page that took t,
#: it pauses (WALK_SHARE - 1) * t.
WALK_SHARE: Final = 10


@dataclass(frozen=True, slots=True)
class Sampler:
    """Counts live records by kind; ``run`` repeats forever, ``sample_once`` is one walk."""

    store: Store
    interval_s: float = INTERVAL_S
    page_size: int = PAGE_SIZE
    page_pause_s: float = PAGE_PAUSE_S
    #: The share of the time a walk may take; 1: no pacing (tests).
    share: float = 1 / WALK_SHARE
    clock: Callable[[], float] = time.time

    def pause_after(self, took_s: float) -> float:
        """The wait after a page that took ``took_s``, so the walk keeps to ``share``."""
        return max(self.page_pause_s, took_s * (1 / self.share - 1))

    async def sample_once(self, *, stop: asyncio.Event | None = None) -> dict[str, int]:
        """One walk; returns the counts (empty when ``stop`` was set midway)."""
        counts: Counter[bytes] = Counter()
        cursor: str | None = None
        while True:
            started = time.monotonic()
            names, cursor = await self.store.export_names(cursor=cursor,
                                                          count=self.page_size)
            counts.update(name.partition(b":")[0] for name in names)
            if cursor is None:
                break
            if stop is not None and stop.is_set():
                return {}
            await asyncio.sleep(self.pause_after(time.monotonic() - started))
        result = {kind: counts.get(kind.encode(), 0) for kind in KINDS}
        for kind, count in result.items():
            metrics.REVOCATIONS_ACTIVE.labels(kind=kind).set(count)
        metrics.ACTIVE_SAMPLED.set(self.clock())
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set. A stop event rather than task cancellation alone,
        because a Redis client may turn a cancellation mid-command into an error."""
        while not stop.is_set():
            try:
                await self.sample_once(stop=stop)
            except StoreError as exc:
                log.warning("could not count active revocations: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)


def install(app: web.Application, *, interval_s: float = INTERVAL_S) -> None:
    """Run a sampler for ``app``'s store while the app runs (the store opens first)."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(Sampler(app[STORE], interval_s=interval_s).run(stop),
                                   name="revoker-active-sampler")
        try:
            yield
        finally:
            stop.set()  # ends the walk at the next page, bounded by the store timeout
            try:
                await asyncio.wait_for(task, app[STORE].timeout_s * 4 + 1)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("the active-revocation sampler did not stop in time")

    app.cleanup_ctx.append(lifecycle)
