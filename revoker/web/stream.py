"""``GET /v1/events/stream``: revocation events as Server-Sent Events.

Streams never read the store on their own: every stream of a worker is a subscriber of
that worker's one event feed (``revoker.store.feed``), whose single blocking reader has a
connection of its own, so open streams cannot take the connections that checks, authz and
revokes use. A stream that asks for history (``Last-Event-ID`` or ``?after=``) reads it
with non-blocking page reads, then joins the live feed with no gap and no duplicate.

Bounds: at most ``REVOKER_MAX_STREAMS`` streams per worker (beyond: 503 with
``Retry-After``); a consumer that does not take a write within ``write_timeout_s``, or
falls more than the feed's queue behind, is disconnected and resumes with
``Last-Event-ID``, losing nothing. A comment line goes out every ``heartbeat_s`` so that
proxies keep an idle stream open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from revoker import metrics
from revoker.errors import InvalidInput, StoreError
from revoker.model import Event, parse_stream_id
from revoker.store.feed import Lagging, Subscription
from revoker.web.auth import require
from revoker.web.jsonio import dumps
from revoker.web.problem import problem
from revoker.web.schemas import CHECK, EVENT_ID, problems
from revoker.web.spec import Operation, Param, Reply, declare
from revoker.web.state import SERVICE, SETTINGS

routes = web.RouteTableDef()
#: Seconds a refused stream is told to wait before trying again.
REFUSED_RETRY_AFTER: Final = "5"
STREAM: Final = Operation(
    "Server-Sent Events of the audit log's events, live; resumes from Last-Event-ID",
    "events", CHECK,
    (Reply(200, "an endless event stream (event: revoked|unrevoked, data: the event)",
           "text/event-stream", {"type": "string"}),
     *problems(400, 401, 403, 503)),
    query=(Param("after", EVENT_ID, "replay the events after this id first (0: all)"),),
    headers=(Param("Last-Event-ID", EVENT_ID, "a reconnecting client's position; wins "
                   "over after", where="header"),),
    description="Too many open streams on a worker is a 503 with Retry-After.")


@dataclass(slots=True)
class StreamOptions:
    """Tunables of every stream of one app (mutable so that tests can shorten them)."""

    heartbeat_s: float = 15.0
    #: How often a quiet stream looks whether its client is still there.
    poll_s: float = 0.5
    write_timeout_s: float = 10.0
    retry_ms: int = 2000
    #: Streams open now in this worker.
    open: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)


STREAM_OPTIONS = web.AppKey("stream_options", StreamOptions)


def setup(app: web.Application) -> None:
    app[STREAM_OPTIONS] = StreamOptions()
    app.on_shutdown.append(_on_shutdown)


async def _on_shutdown(app: web.Application) -> None:
    """Open streams would otherwise hold graceful shutdown for its whole timeout."""
    app[STREAM_OPTIONS].closing.set()
    await app[SERVICE].close()


def format_event(event: Event) -> bytes:
    """One SSE message; the JSON is on one line, so one ``data:`` field suffices."""
    data = dumps(event.to_dict()).decode()
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


def _start_after(request: web.Request) -> str | None:
    """``Last-Event-ID`` (a reconnecting browser) wins over ``?after=`` (a first
    connection that wants history); ``after=0`` replays everything still retained."""
    text = request.headers.get("Last-Event-ID") or request.query.get("after") or None
    if text is None:
        return None
    try:
        parse_stream_id(text)
    except InvalidInput:
        raise InvalidInput("Last-Event-ID / after must be an event id like 1764340000000-0",
                           field="after") from None
    return text


@routes.get("/v1/events/stream")
@declare(STREAM)
async def stream(request: web.Request) -> web.StreamResponse:
    """Without a starting point the stream begins with the next event."""
    require(request, "check")
    after = _start_after(request)
    options = request.app[STREAM_OPTIONS]
    if options.open >= request.app[SETTINGS].max_streams:
        metrics.STREAMS_REFUSED.inc()
        return problem(503, "too many event streams are open on this worker; retry later",
                       headers={"Retry-After": REFUSED_RETRY_AFTER})
    service = request.app[SERVICE]
    options.open += 1
    metrics.STREAMS_OPEN.inc()
    try:
        subscription = await service.subscribe()
        try:
            return await _serve(request, subscription, after, options)
        finally:
            service.unsubscribe(subscription)
    finally:
        options.open -= 1
        metrics.STREAMS_OPEN.dec()


async def _serve(request: web.Request, subscription: Subscription, after: str | None,
                 options: StreamOptions) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    response.force_close()  # a stream ends with its connection, never reused
    await response.prepare(request)
    try:
        await _write(response, f"retry: {options.retry_ms}\n\n".encode(), options)
        async for chunk in _chunks(request, subscription, after, options):
            await _write(response, chunk, options)
    except ConnectionError:
        pass  # the client went away; it resumes from its last id
    except TimeoutError:
        _abort(request)  # it stopped reading: drop what is buffered for it, not wait on it
    except Lagging:
        metrics.STREAMS_LAGGING.inc()
        _abort(request)  # too far behind: it resumes from its last id
    return response


async def _chunks(request: web.Request, subscription: Subscription, after: str | None,
                  options: StreamOptions) -> AsyncIterator[bytes]:
    """History (when asked for), then live events, a heartbeat when quiet, until
    shutdown or disconnect. A store failure during history ends the stream: the client
    reconnects after ``retry`` with its ``Last-Event-ID``."""
    if after is not None:
        try:
            async for page in subscription.history(after):
                yield b"".join(format_event(event) for event in page)
        except StoreError:
            yield b": store unavailable, reconnect\n\n"
            return
    last_sent = time.monotonic()
    while not options.closing.is_set() and not _gone(request):
        events = await subscription.next(min(options.poll_s, options.heartbeat_s))
        if events is None:
            return
        if events:
            yield b"".join(format_event(event) for event in events)
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= options.heartbeat_s:
            yield b": heartbeat\n\n" if subscription.healthy else \
                b": store unavailable, retrying\n\n"
            last_sent = time.monotonic()


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _write(response: web.StreamResponse, chunk: bytes, options: StreamOptions) -> None:
    """Backpressure: the write waits for the transport buffer to drain, within a bound."""
    async with asyncio.timeout(options.write_timeout_s):
        await response.write(chunk)
