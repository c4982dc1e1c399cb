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
    """Open the store before the first request (retrying briefly while Redis starts) and
    close it after the last one."""
    store = app[STORE]
    deadline = time.monotonic() + STARTUP_RETRY_S
    while True:
        try:
            await store.open()
            break
        except StoreUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("store not reachable yet (%s); retrying", exc)
            await asyncio.sleep(0.5)
    try:
        yield
    finally:
        await store.close()
