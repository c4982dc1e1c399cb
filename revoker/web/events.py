"""The audit log of revocation events, as pages (admin)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from revoker.model import parse_stream_id
from revoker.web.auth import require
from revoker.web.jsonio import respond
from revoker.web.revocations import query_int
from revoker.web.schemas import ADMIN, EVENT_ID, json_reply, limit_param, problems, ref
from revoker.web.spec import Operation, Param, declare
from revoker.web.state import SERVICE

routes = web.RouteTableDef()
MAX_EVENTS_LIMIT: Final = 1000
DEFAULT_EVENTS_LIMIT: Final = 100
EVENTS: Final = Operation(
    "Audit log of revocation events, oldest first", "events", ADMIN,
    (json_reply(200, "a page; pass next as after to continue", {
        "type": "object", "additionalProperties": False, "required": ["events", "next"],
        "properties": {"events": {"type": "array", "items": ref("Event")},
                       "next": {"oneOf": [EVENT_ID, {"type": "null"}]}}}),
     *problems(400, 401, 403, 503)),
    query=(Param("after", EVENT_ID, "the events after this id"),
           limit_param(default=DEFAULT_EVENTS_LIMIT, high=MAX_EVENTS_LIMIT)))


@routes.get("/v1/events")
@declare(EVENTS)
async def list_events(request: web.Request) -> web.Response:
    """``next`` is the cursor to pass as ``after``: the last id returned, or ``after``
    itself when nothing newer exists yet (so polling clients keep their place)."""
    require(request, "admin")
    after = request.query.get("after") or None
    if after is not None:
        parse_stream_id(after)
    limit = query_int(request, "limit", default=DEFAULT_EVENTS_LIMIT, high=MAX_EVENTS_LIMIT)
    events = await request.app[SERVICE].events(after=after, limit=limit)
    next_id = events[-1].id if events else after
    return respond({"events": [e.to_dict() for e in events], "next": next_id})
