"""Revocations: create (one or a batch), read, delete and list."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from revoker.bodies import parse_revoke
from revoker.errors import InvalidInput, NotFound
from revoker.model import RevokeRequest, check_kind, check_value
from revoker.service import Revoked
from revoker.web.auth import require
from revoker.web.check import batch_items
from revoker.web.jsonio import read_json, respond
from revoker.web.problem import item_problem
from revoker.web.schemas import (
    ADMIN,
    JSON,
    KIND,
    REVOKE,
    VALUE,
    json_reply,
    limit_param,
    problems,
    ref,
)
from revoker.web.spec import Body, Operation, Param, Reply, declare
from revoker.web.state import SERVICE

routes = web.RouteTableDef()
MAX_REVOKE_BATCH: Final = 10000
MAX_LIST_LIMIT: Final = 1000
DEFAULT_LIST_LIMIT: Final = 100

_ERRORS: Final = problems(400, 401, 403, 413, 415, 503)
_KIND_VALUE: Final = (Param("kind", KIND, where="path"),
                      Param("value", VALUE, "percent-encoded", where="path"))
_ITEM_OUTCOME: Final = {
    "type": "object", "additionalProperties": False, "required": ["status", "stored", "result"],
    "properties": {"status": {"enum": [200, 201]}, "stored": {"type": "boolean"},
                   "result": {"oneOf": [ref("Record"), ref("NotStored")]}}}
CREATE: Final = Operation(
    "Revoke by kind and value, or a token's jti until its exp", "revocations", REVOKE,
    (json_reply(201, "stored", ref("Record")),
     json_reply(200, "already existed (expiry merged), or expired: nothing stored",
                {"oneOf": [ref("Record"), ref("NotStored")]}), *_ERRORS),
    bodies=(Body(JSON, ref("RevokeBody")),))
CREATE_BATCH: Final = Operation(
    f"Revoke up to {MAX_REVOKE_BATCH} items in order; a bad item fails alone", "revocations",
    REVOKE,
    (json_reply(200, "one result per item", {
        "type": "object", "additionalProperties": False, "required": ["results"],
        "properties": {"results": {"type": "array", "items": {
            "oneOf": [_ITEM_OUTCOME, ref("Problem")]}}}}), *_ERRORS),
    bodies=(Body(JSON, {"type": "object", "required": ["items"], "additionalProperties": False,
                        "properties": {"items": {"type": "array", "minItems": 1,
                                                 "maxItems": MAX_REVOKE_BATCH,
                                                 "items": ref("RevokeBody")}}}),))
READ: Final = Operation(
    "Read a record", "revocations", REVOKE,
    (json_reply(200, "the record", ref("Record")), *problems(400, 401, 403, 404, 503)),
    path=_KIND_VALUE)
DELETE: Final = Operation(
    "Unrevoke", "revocations", ADMIN,
    (Reply(204, "deleted"), *problems(400, 401, 403, 404, 503)), path=_KIND_VALUE)
LIST: Final = Operation(
    "List live records, a page at a time", "revocations", ADMIN,
    (json_reply(200, "a page; pass cursor back for the next, null at the end", {
        "type": "object", "additionalProperties": False, "required": ["items", "cursor"],
        "properties": {"items": {"type": "array", "items": ref("Record")},
                       "cursor": {"type": ["string", "null"]}}}),
     *problems(400, 401, 403, 503)),
    query=(Param("kind", KIND, "only records of this kind"),
           Param("prefix", VALUE, "only values that start with this text (literally)"),
           Param("actor", VALUE, "only records made by this key or client (exact)"),
           Param("cursor", {"type": "string"}, "where the previous page ended"),
           limit_param(default=DEFAULT_LIST_LIMIT, high=MAX_LIST_LIMIT)))


def outcome_body(outcome: Revoked) -> dict[str, Any]:
    """The record when stored; ``stored: false`` when nothing could match any more."""
    if outcome.record is None:
        return {"stored": False, "kind": outcome.request.kind, "value": outcome.request.value,
                "detail": "already expired: no token it matches can still be valid"}
    return outcome.record.to_dict()


def outcome_status(outcome: Revoked) -> int:
    return 201 if outcome.created else 200


@routes.post("/v1/revocations")
@declare(CREATE)
async def create(request: web.Request) -> web.Response:
    principal = require(request, "revoke")
    revoke_request = parse_revoke(await read_json(request))
    outcome = await request.app[SERVICE].revoke(revoke_request, actor=principal.name)
    return respond(outcome_body(outcome), status=outcome_status(outcome))


@routes.post("/v1/revocations/batch")
@declare(CREATE_BATCH)
async def create_batch(request: web.Request) -> web.Response:
    """Valid items are stored in one pipelined round trip; a bad item fails alone."""
    principal = require(request, "revoke")
    items = batch_items(await read_json(request), MAX_REVOKE_BATCH)
    parsed: list[RevokeRequest | InvalidInput] = []
    for item in items:
        try:
            parsed.append(parse_revoke(item))
        except InvalidInput as exc:
            parsed.append(exc)
    good = [p for p in parsed if isinstance(p, RevokeRequest)]
    done = iter(await request.app[SERVICE].revoke_many(good, actor=principal.name))
    results: list[dict[str, Any]] = []
    for entry in parsed:
        outcome = entry if isinstance(entry, InvalidInput) else next(done)
        if isinstance(outcome, InvalidInput):
            results.append(item_problem(outcome))
        else:
            results.append({"status": outcome_status(outcome), "stored": outcome.stored,
                            "result": outcome_body(outcome)})
    return respond({"results": results})


def _kind_value(request: web.Request) -> tuple[str, str]:
    return (check_kind(request.match_info["kind"]),
            check_value(request.match_info["value"]))


@routes.get("/v1/revocations/{kind}/{value}")
@declare(READ)
async def read(request: web.Request) -> web.Response:
    require(request, "revoke")
    kind, value = _kind_value(request)
    record = await request.app[SERVICE].get(kind, value)
    if record is None:
        raise NotFound(f"no {kind} revocation for this value")
    return respond(record.to_dict())


@routes.delete("/v1/revocations/{kind}/{value}")
@declare(DELETE)
async def delete(request: web.Request) -> web.Response:
    require(request, "admin")
    kind, value = _kind_value(request)
    if await request.app[SERVICE].unrevoke(kind, value) is None:
        raise NotFound(f"no {kind} revocation for this value")
    return web.Response(status=204)


@routes.get("/v1/revocations")
@declare(LIST)
async def list_records(request: web.Request) -> web.Response:
    require(request, "admin")
    query = request.query
    kind = check_kind(query["kind"]) if query.get("kind") else None
    prefix = optional_value(request, "prefix")
    actor = optional_value(request, "actor")
    cursor = query.get("cursor") or None
    limit = query_int(request, "limit", default=DEFAULT_LIST_LIMIT, high=MAX_LIST_LIMIT)
    service = request.app[SERVICE]
    items, next_cursor = await service.list_records(kind=kind, prefix=prefix, actor=actor,
                                                    cursor=cursor, limit=limit)
    return respond({"items": [r.to_dict() for r in items], "cursor": next_cursor})


def optional_value(request: web.Request, name: str) -> str | None:
    """A filter that compares with record values: absent, or a valid value."""
    text = request.query.get(name)
    return None if text is None else check_value(text, field=name)


def query_int(request: web.Request, name: str, *, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= high:
        raise InvalidInput(f"{name} must be an integer from 1 to {high}", field=name)
    return int(text)
