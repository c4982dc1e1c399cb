"""Wire the local denylist mirror into the app when ``REVOKER_CHECK_MODE=mirror``.

Checks then read through ``Mirror.lookup`` (the service's ``lookup`` hook) and ``/readyz``
fails while the mirror is out of sync. In ``strict`` mode this module does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from revoker.mirror import Mirror
from revoker.web.state import READINESS, SERVICE, SETTINGS, STORE

routes = web.RouteTableDef()
MIRROR = web.AppKey("mirror", Mirror)


def setup(app: web.Application) -> None:
    if app[SETTINGS].check_mode != "mirror":
        return
    mirror = Mirror(app[STORE], clock=app[SERVICE].clock)
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
