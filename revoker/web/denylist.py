"""``GET /v1/denylist``: every active record as NDJSON, for clients that keep a mirror.

A mirror loads this snapshot, then follows ``/v1/events/stream`` from the position named
in ``X-Revoker-Position``. That id is read *before* the first page, so every revoke or
unrevoke that lands while the snapshot is being read has an event after it: replaying
such an event over a snapshot that already saw its effect is harmless, because events
carry the whole stored record. The snapshot is paged through the service (one page in
memory at a time) and written with backpressure, so a large denylist costs neither the
service's memory nor its store connections for longer than one page read; a client that
stops reading is dropped after ``WRITE_TIMEOUT_S``.

``X-Revoker-Oldest`` names the oldest event the service still holds (absent when none):
a mirror whose position is older than that has missed trimmed events and must load the
snapshot again. ``HEAD`` answers both headers without reading any record, which is how
a mirror checks cheaply that it is still in step.

A record may appear twice (a listing that pages while records change can return one
again); a mirror keeps the last. A store failure before the first line is a 503; after
it, the connection is cut, so the client sees a truncated chunked body, never a short
snapshot that looks complete.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from revoker.errors import StoreError
from revoker.model import Record
from revoker.web.auth import require
from revoker.web.jsonio import dumps
from revoker.web.schemas import CHECK, EVENT_ID, problems, ref
from revoker.web.spec import Operation, Reply, declare
from revoker.web.state import SERVICE

routes = web.RouteTableDef()
PAGE_SIZE: Final = 1000
WRITE_TIMEOUT_S: Final = 10.0
POSITION_HEADER: Final = "X-Revoker-Position"
OLDEST_HEADER: Final = "X-Revoker-Oldest"
NDJSON: Final = "application/x-ndjson"
DENYLIST: Final = Operation(
    "Every active record as NDJSON, for clients that keep their own mirror", "events", CHECK,
    (Reply(200, "one record per line", NDJSON, ref("Record"), {
        POSITION_HEADER: EVENT_ID, OLDEST_HEADER: EVENT_ID}),
     *problems(401, 403, 503)),
    description="Follow /v1/events/stream after the X-Revoker-Position event id, so that "
                "nothing between the snapshot and the stream is missed; X-Revoker-Oldest is the "
                "oldest event still held.")


@routes.get("/v1/denylist")
@declare(DENYLIST)
async def denylist(request: web.Request) -> web.StreamResponse:
    require(request, "check")
    service = request.app[SERVICE]
    position = await service.position()  # before the snapshot: see the module docstring
    oldest = await service.oldest_position()
    headers = {POSITION_HEADER: position, "Cache-Control": "no-store", "Content-Type": NDJSON}
    if oldest is not None:
        headers[OLDEST_HEADER] = oldest
    if request.method == "HEAD":
        return web.Response(headers=headers)
    records, cursor = await service.list_records(kind=None, cursor=None, limit=PAGE_SIZE)
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        while True:
            if records:
                await _write(response, _lines(records))
            if cursor is None:
                break
            records, cursor = await service.list_records(kind=None, cursor=cursor,
                                                         limit=PAGE_SIZE)
    except (StoreError, TimeoutError):
        _abort(request)  # never end a partial snapshot as if it were whole
        return response
    except ConnectionError:
        return response  # the client went away
    await response.write_eof()
    return response


def _lines(records: list[Record]) -> bytes:
    return b"".join(dumps(record.to_dict()) + b"\n" for record in records)


async def _write(response: web.StreamResponse, chunk: bytes) -> None:
    """Waits for the transport to drain (bounded memory), within a bound."""
    async with asyncio.timeout(WRITE_TIMEOUT_S):
        await response.write(chunk)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
