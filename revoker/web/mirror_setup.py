"""The read path of checks: the service's ``lookup`` hook, set per ``REVOKER_CHECK_MODE``.

``strict``: every check reads Redis, with the lookups of concurrent checks coalesced into
one MGET per turn of the event loop. ``mirror``: checks read a local copy of the denylist
(``Mirror.lookup``), ``/readyz`` fails while it is out of sync, and meanwhile checks read
Redis as in strict mode. Single revokes are written in batches too (``batch_revokes``).
A single-process store (``memory://``) is used directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from revoker.mirror import Coalescer, Mirror
from revoker.web.state import READINESS, SERVICE, SETTINGS, STORE

routes = web.RouteTableDef()
MIRROR = web.AppKey("mirror", Mirror)


def setup(app: web.Application) -> None:
    store, service = app[STORE], app[SERVICE]
    if store.single_process:
        return
    service.batch_revokes = True
    strict = Coalescer(service.lookup).lookup
    if app[SETTINGS].check_mode != "mirror":
        service.lookup = strict
        return
    mirror = Mirror(store, clock=service.clock, fallback=strict)
    app[MIRROR] = mirror
    app[SERVICE].lookup = mirror.lookup
    app[READINESS].append(mirror.readiness)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Registered after the store's own lifecycle, so Redis is open when the load starts;
    the load runs in the background (checks read Redis until it is done)."""
    mirror = app[MIRROR]
    await mirror.start()
    try:
        yield
    finally:
        await mirror.stop()
