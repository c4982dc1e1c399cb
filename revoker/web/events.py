"""The audit log of revocation events, as pages (admin)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from revoker.model import check_kind, parse_stream_id
from revoker.web.auth import require
from revoker.web.jsonio import respond
from revoker.web.revocations import optional_value, query_int
from revoker.web.schemas import (
    ADMIN,
    EVENT_ID,
    KIND,
    VALUE,
    json_reply,
    limit_param,
    problems,
    ref,
)
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
           Param("kind", KIND, "only events of records of this kind"),
           Param("value", VALUE, "only events of records with this value (exact)"),
           Param("actor", VALUE, "only events of records made by this key or client"),
           limit_param(default=DEFAULT_EVENTS_LIMIT, high=MAX_EVENTS_LIMIT)))


@routes.get("/v1/events")
@declare(EVENTS)
async def list_events(request: web.Request) -> web.Response:
    """``next`` is the cursor to pass as ``after``: the last event examined, or ``after``
    itself when nothing newer exists yet (so polling clients keep their place). Filters
    are exact matches; a page examines a bounded number of events, so a filtered page may
    be short or empty while ``next`` moves on."""
    require(request, "admin")
    after = request.query.get("after") or None
    if after is not None:
        parse_stream_id(after)
    limit = query_int(request, "limit", default=DEFAULT_EVENTS_LIMIT, high=MAX_EVENTS_LIMIT)
    kind = check_kind(request.query["kind"]) if request.query.get("kind") else None
    page = await request.app[SERVICE].search_events(
        after=after, limit=limit, kind=kind, value=optional_value(request, "value"),
        actor=optional_value(request, "actor"))
    return respond({"events": [e.to_dict() for e in page.events], "next": page.next})
