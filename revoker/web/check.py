"""Check endpoints: the question every gateway asks, "is it revoked?"."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from revoker.bodies import parse_check, require_object
from revoker.errors import InvalidInput
from revoker.model import MAX_VALUE_BYTES, Claims, check_value
from revoker.service import CheckResult
from revoker.web.auth import authorize, require
from revoker.web.jsonio import read_json, respond
from revoker.web.problem import item_problem
from revoker.web.schemas import (
    CHECK,
    JSON,
    VALUE,
    json_reply,
    problems,
    ref,
)
from revoker.web.spec import Body, Operation, Param, declare
from revoker.web.state import KEYRING, SERVICE, SETTINGS

routes = web.RouteTableDef()
JTI_ROUTE: Final = "/v1/check/{jti}"
MAX_CHECK_BATCH: Final = 1000
DEGRADED_HEADER: Final = {"X-Revoker-Degraded": "fail-open"}
#: Printable ASCII within the byte limit: always a valid value (``model.check_value``).
_PLAIN_VALUE: Final = re.compile(rf"[\x20-\x7e]{{1,{MAX_VALUE_BYTES}}}")


_DEGRADED: Final = {"X-Revoker-Degraded": {"const": "fail-open",
                                             "description": "a fail-open guess, not a fact"}}
_ERRORS: Final = problems(400, 401, 403, 413, 415, 503)
_JTI_ANSWER: Final = {"type": "object", "additionalProperties": False,
                      "required": ["jti", "revoked", "record"],
                      "properties": {"jti": VALUE, "revoked": {"type": "boolean"},
                                     "record": {"oneOf": [ref("Record"), {"type": "null"}]}}}
CHECK_JTI: Final = Operation(
    "Is this jti revoked?", "check", CHECK,
    (json_reply(200, "the answer", _JTI_ANSWER, headers=_DEGRADED),
     *problems(400, 401, 403, 503)),
    path=(Param("jti", VALUE, where="path"),))
CHECK_ONE: Final = Operation(
    "Check a token (decoded, not validated) or claims against every kind", "check", CHECK,
    (json_reply(200, "the answer", ref("CheckResult"), headers=_DEGRADED), *_ERRORS),
    bodies=(Body(JSON, ref("CheckBody")),))
CHECK_BATCH: Final = Operation(
    f"Check up to {MAX_CHECK_BATCH} items in order; a bad item gets its own problem",
    "check", CHECK,
    (json_reply(200, "one result per item", {
        "type": "object", "additionalProperties": False, "required": ["results"],
        "properties": {"results": {"type": "array", "items": {
            "oneOf": [ref("CheckResult"), ref("Problem")]}}}}, headers=_DEGRADED), *_ERRORS),
    bodies=(Body(JSON, {"type": "object", "required": ["items"], "additionalProperties": False,
                        "properties": {"items": {"type": "array", "minItems": 1,
                                                 "maxItems": MAX_CHECK_BATCH,
                                                 "items": ref("CheckBody")}}}),))


def _headers(results: list[CheckResult]) -> dict[str, str] | None:
    """Fail-open answers say so, so that a caller can tell a guess from a fact."""
    return DEGRADED_HEADER if any(r.degraded for r in results) else None


@routes.get(JTI_ROUTE)
@declare(CHECK_JTI)
async def check_jti(request: web.Request) -> web.Response:
    return await answer_jti(request, request.match_info["jti"], request.app)


async def answer_jti(request: web.Request, jti: str, app: web.Application) -> web.Response:
    """All of ``check_jti``'s work, with the application passed in: the fast lane
    (``revoker.web.fastlane``) reaches it without the router, so without ``request.app``."""
    authorize(request, "check", app[SETTINGS].check_auth, app[KEYRING])
    if not _PLAIN_VALUE.fullmatch(jti):  # the common case skips the per-character scan
        check_value(jti, field="jti")
    result = await app[SERVICE].check_jti(jti)
    record = result.matches[0].to_dict() if result.matches else None
    return respond({"jti": jti, "revoked": result.revoked, "record": record},
                   headers=DEGRADED_HEADER if result.degraded else None)


@routes.post("/v1/check")
@declare(CHECK_ONE)
async def check_one(request: web.Request) -> web.Response:
    require(request, "check")
    claims = parse_check(await read_json(request))
    result = await request.app[SERVICE].check(claims)
    return respond(_result_body(result), headers=_headers([result]))


@routes.post("/v1/check/batch")
@declare(CHECK_BATCH)
async def check_batch(request: web.Request) -> web.Response:
    """Items are checked in one store round trip; a bad item gets its own 400 result."""
    require(request, "check")
    items = batch_items(await read_json(request), MAX_CHECK_BATCH)
    parsed: list[Claims | InvalidInput] = []
    for item in items:
        try:
            parsed.append(parse_check(item))
        except InvalidInput as exc:
            parsed.append(exc)
    good = [p for p in parsed if isinstance(p, Claims)]
    checked = iter(await request.app[SERVICE].check_many(good))
    results: list[dict[str, Any]] = []
    done: list[CheckResult] = []
    for entry in parsed:
        if isinstance(entry, InvalidInput):
            results.append(item_problem(entry))
        else:
            result = next(checked)
            done.append(result)
            results.append(_result_body(result))
    return respond({"results": results}, headers=_headers(done))


def _result_body(result: CheckResult) -> dict[str, Any]:
    return {"revoked": result.revoked, "matches": [m.to_dict() for m in result.matches]}


def batch_items(body: Any, limit: int) -> list[Any]:
    data = require_object(body)
    items = data.get("items")
    if not isinstance(items, list) or set(data) != {"items"}:
        raise InvalidInput('the body must be {"items": [...]}', field="items")
    if not items:
        raise InvalidInput("items may not be empty", field="items")
    if len(items) > limit:
        raise InvalidInput(f"at most {limit} items per batch", field="items")
    return items
