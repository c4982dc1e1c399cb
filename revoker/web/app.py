"""The application factory: state, middlewares, resources and routes in one readable place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType

from aiohttp import web

from revoker import metrics
from revoker.apikeys import KeyRing
from revoker.config import Settings
from revoker.errors import StoreUnavailable
from revoker.logs import redact_url
from revoker.model import Lifetimes
from revoker.service import Revoker
from revoker.store import Store, open_store
from revoker.web import (
    authz,
    check,
    console,
    denylist,
    events,
    gtr,
    health,
    introspect,
    logout,
    metadata,
    oauth,
    oidc,
    openapi,
    revocations,
    ssf,
    ssf_poll,
    ssf_stream,
    stream,
    whoami,
)
from revoker.web.middlewares import MIDDLEWARES
from revoker.web.state import KEYRING, READINESS, SERVICE, SETTINGS, STORE

log = logging.getLogger(__name__)

#: Every API area; each module has ``routes`` and may have ``setup(app)`` for resources.
ROUTE_MODULES: tuple[ModuleType, ...] = (health, openapi, check, revocations, events, stream,
                                           authz, introspect, logout, oauth, oidc, ssf, whoami,
                                           console, gtr, metadata, ssf_poll, denylist,
                                           ssf_stream)
STARTUP_RETRY_S = 10.0
STARTUP_POLL_S = 0.5
COUNTDOWN_EVERY_S = 2.0


def create_app(settings: Settings, *, store: Store | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES,
                          client_max_size=settings.max_body_bytes)
    store = store or open_store(settings, clock=clock)
    app[SETTINGS] = settings
    app[STORE] = store
    app[KEYRING] = KeyRing(settings.api_keys)
    app[SERVICE] = Revoker(store, lifetimes=Lifetimes(settings.max_token_lifetime_s,
                                                      settings.leeway_s),
                           fail_mode=settings.fail_mode, clock=clock)
    app[READINESS] = []
    app.cleanup_ctx.append(_store_lifecycle)
    app.cleanup_ctx.append(metrics.flushing)
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    return app


async def _store_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open the store before the first request and close it after the last one.

    While Redis starts (a container started beside it, a failover), opening is retried for
    ``STARTUP_RETRY_S``: one line names the store and the cause, then a countdown every few
    seconds, and a final error that says what was tried (the process then exits 1)."""
    store = app[STORE]
    where = redact_url(app[SETTINGS].store_url)
    deadline = time.monotonic() + STARTUP_RETRY_S
    next_note: float | None = None
    while True:
        try:
            await store.open()
            break
        except StoreUnavailable as exc:
            now = time.monotonic()
            if now >= deadline:
                raise StoreUnavailable(f"{where} did not answer within "
                                       f"{STARTUP_RETRY_S:.0f} s ({cause_of(exc)})") from exc
            if next_note is None:
                log.warning("store %s not reachable: %s; retrying for %.0f s", where,
                            cause_of(exc), STARTUP_RETRY_S)
                next_note = now + COUNTDOWN_EVERY_S
            elif now >= next_note:
                log.warning("store %s still not reachable; %.0f s left", where, deadline - now)
                next_note += COUNTDOWN_EVERY_S
            await asyncio.sleep(STARTUP_POLL_S)
    try:
        yield
    finally:
        await store.close()


def cause_of(exc: BaseException) -> str:
    """The driver's own words (``Error 111 connecting to 127.0.0.1:6379. Connection
    refused.``) rather than our summary of them."""
    cause = exc.__cause__
    if cause is not None and str(cause):
        return str(cause)
    return str(exc) or type(exc).__name__

