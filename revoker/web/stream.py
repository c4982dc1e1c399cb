"""``GET /v1/events/stream``: revocation events as Server-Sent Events.

Each connection reads the store's event stream itself, a bounded batch at a time, and
writes it before reading more, so a slow consumer costs at most one batch plus the
transport's write buffer; a consumer that does not take a write within
``write_timeout_s`` is disconnected (it resumes with ``Last-Event-ID``, losing nothing).
Blocking reads are short (``poll_s``) so that the Redis socket timeout is never reached
and shutdown or a vanished client is noticed quickly; a comment line goes out every
``heartbeat_s`` so that proxies keep an idle stream open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from revoker.errors import InvalidInput, StoreError
from revoker.model import Event, parse_stream_id
from revoker.web.auth import require
from revoker.web.jsonio import dumps
from revoker.web.state import SERVICE

routes = web.RouteTableDef()
BATCH: Final = 100


@dataclass(slots=True)
class StreamOptions:
    """Tunables of every stream of one app (mutable so that tests can shorten them)."""

    heartbeat_s: float = 15.0
    poll_s: float = 0.5
    write_timeout_s: float = 10.0
    retry_ms: int = 2000
    closing: asyncio.Event = field(default_factory=asyncio.Event)


STREAM_OPTIONS = web.AppKey("stream_options", StreamOptions)


def setup(app: web.Application) -> None:
    app[STREAM_OPTIONS] = StreamOptions()
    app.on_shutdown.append(_on_shutdown)


async def _on_shutdown(app: web.Application) -> None:
    """Open streams would otherwise hold graceful shutdown for its whole timeout."""
    app[STREAM_OPTIONS].closing.set()


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
async def stream(request: web.Request) -> web.StreamResponse:
    """Without a starting point the stream begins with the next event."""
    require(request, "check")
    service = request.app[SERVICE]
    after = _start_after(request)
    if after is None:
        after = await service.store.last_event_id() or "0-0"
    options = request.app[STREAM_OPTIONS]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    response.force_close()  # a stream ends with its connection, never reused
    await response.prepare(request)
    await _write(response, f"retry: {options.retry_ms}\n\n".encode(), options)
    try:
        async for chunk in _chunks(request, after, options):
            await _write(response, chunk, options)
    except ConnectionError:
        pass  # the client went away; it resumes from its last id
    except TimeoutError:
        _abort(request)  # it stopped reading: drop what is buffered for it, not wait on it
    return response


async def _chunks(request: web.Request, after: str, options: StreamOptions
                  ) -> AsyncIterator[bytes]:
    """Events as they come, a heartbeat when quiet, until shutdown or disconnect."""
    service = request.app[SERVICE]
    last_sent = time.monotonic()
    while not options.closing.is_set() and not _gone(request):
        try:
            events = await service.events(after=after, limit=BATCH,
                                          block_ms=int(options.poll_s * 1000))
        except StoreError:
            yield b": store unavailable, retrying\n\n"
            await asyncio.sleep(options.poll_s)
            continue
        if events:
            after = events[-1].id
            yield b"".join(format_event(event) for event in events)
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= options.heartbeat_s:
            yield b": heartbeat\n\n"
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
