"""The API's shared vocabulary for route declarations: component schemas (Record, Problem,
...), who may call, and the error answers every route shares.

Every limit and enumeration is the constant the parsers and handlers enforce (``model``,
``bodies``, ``tokens``, ``config``), so the document states exactly what the code accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from revoker.bodies import MAX_TIME, MAX_TTL_S
from revoker.model import EVENT_TYPES, KINDS, MAX_REASON_CHARS, MAX_VALUE_BYTES, STREAM_ID_PATTERN
from revoker.tokens import MAX_TOKEN_BYTES
from revoker.web.problem import CONTENT_TYPE as PROBLEM
from revoker.web.spec import Caller, Param, Reply, Schema

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
TEXT: Final = "text/plain"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [dict(schema), {"type": "null"}]}


VALUE: Final[Schema] = {
    "type": "string", "minLength": 1, "maxLength": MAX_VALUE_BYTES,
    "description": f"1-{MAX_VALUE_BYTES} bytes of UTF-8 without control characters"}
KIND: Final[Schema] = {"type": "string", "enum": list(KINDS)}
TIME: Final[Schema] = {"type": "integer", "minimum": 0, "maximum": MAX_TIME,
                       "description": "Unix time in seconds"}
EVENT_ID: Final[Schema] = {"type": "string", "pattern": f"^(?:{STREAM_ID_PATTERN})$",
                           "description": "an event id like 1764340000000-0"}
TOKEN: Final[Schema] = {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_BYTES}
REASON: Final[Schema] = {"type": "string", "maxLength": MAX_REASON_CHARS,
                         "description": "free text without control characters (tab allowed)"}
HEADER_TEXT: Final[Schema] = {"type": "string"}
#: A stored time: an expiry may lie past ``MAX_TIME`` by the leeway.
STORED_TIME: Final[Schema] = {"type": "integer", "minimum": 0}


def limit_param(*, default: int, high: int) -> Param:
    return Param("limit", {"type": "integer", "minimum": 1, "maximum": high,
                           "default": default}, "page size")


def _record() -> Schema:
    return {"type": "object", "additionalProperties": False,
            "required": ["kind", "value", "revoked_at", "expires_at", "issued_before",
                         "reason", "actor"],
            "properties": {"kind": KIND, "value": VALUE, "revoked_at": STORED_TIME,
                           "expires_at": STORED_TIME,
                           "issued_before": {"type": ["integer", "null"]},
                           "reason": {"type": ["string", "null"]},
                           "actor": {"type": ["string", "null"]}}}


def _revoke_by_value() -> Schema:
    optional_time = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_TIME}
    return {"type": "object", "additionalProperties": False, "required": ["kind", "value"],
            "not": {"required": ["expires_at", "ttl"],
                    "description": "expires_at and ttl exclude each other"},
            "properties": {
                "kind": KIND, "value": VALUE, "expires_at": optional_time,
                "ttl": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_TTL_S,
                        "description": "seconds from now; 0 or a past expires_at stores "
                                       "nothing"},
                "issued_before": optional_time,
                "reason": {"type": ["string", "null"], "maxLength": MAX_REASON_CHARS}}}


def _check_body() -> Schema:
    claim = {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_VALUE_BYTES}
    claims = {"type": "object", "description": "other members are ignored",
              "properties": {name: claim for name in ("jti", "sub", "sid", "kid", "client_id",
                                                      "azp")}
              | {"iat": {"type": ["number", "null"]}}}
    return {"oneOf": [
        {"type": "object", "required": ["token"], "additionalProperties": False,
         "properties": {"token": {**TOKEN, "description": "decoded, not validated"}}},
        {"type": "object", "required": ["claims"], "additionalProperties": False,
         "properties": {"claims": claims}}]}


def component_schemas() -> dict[str, Schema]:
    """Every schema the declarations refer to by name (``ref``)."""
    return {
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"},
                                   "detail": {"type": "string"}}},
        "Record": _record(),
        "RevokeByValue": _revoke_by_value(),
        "RevokeByToken": {"type": "object", "required": ["token"],
                          "additionalProperties": False,
                          "properties": {"token": TOKEN,
                                         "reason": {"type": ["string", "null"],
                                                    "maxLength": MAX_REASON_CHARS}}},
        "RevokeBody": {"oneOf": [ref("RevokeByValue"), ref("RevokeByToken")]},
        "NotStored": {"type": "object", "additionalProperties": False,
                      "required": ["stored", "kind", "value", "detail"],
                      "properties": {"stored": {"const": False}, "kind": KIND,
                                     "value": VALUE, "detail": {"type": "string"}}},
        "CheckBody": _check_body(),
        "CheckResult": {"type": "object", "additionalProperties": False,
                        "required": ["revoked", "matches"],
                        "properties": {"revoked": {"type": "boolean"},
                                       "matches": {"type": "array", "items": ref("Record")}}},
        "Event": {"type": "object", "additionalProperties": False,
                  "required": ["id", "type", "record", "at"],
                  "properties": {"id": EVENT_ID, "type": {"enum": list(EVENT_TYPES)},
                                 "record": ref("Record"), "at": STORED_TIME}},
        "OAuthError": {"type": "object", "required": ["error"],
                       "properties": {"error": {"type": "string"},
                                      "error_description": {"type": "string"}}},
    }


SECURITY_SCHEMES: Final[dict[str, Any]] = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "An API key as a bearer token"},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-Revoker-Key"},
    "basicClient": {"type": "http", "scheme": "basic",
                    "description": "A configured OAuth client"},
    "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}

_KEY: Final = ({"bearerKey": ()}, {"headerKey": ()})
PUBLIC: Final = Caller((), "No credential.")
ANY_KEY: Final = Caller(_KEY, "Needs any valid API key.")
CHECK: Final = Caller(_KEY, "Needs an API key with the `check` scope (or none at all "
                            "where `REVOKER_CHECK_AUTH=none`).")
REVOKE: Final = Caller(_KEY, "Needs an API key with the `revoke` scope.")
ADMIN: Final = Caller(_KEY, "Needs an API key with the `admin` scope.")
GATEWAY: Final = Caller(({"headerKey": ()}, {}),
                        "The gateway's API key (`check`) in `X-Revoker-Key`, unless "
                        "`REVOKER_CHECK_AUTH=none`; `Authorization` carries the user's token.")
USER: Final = Caller(({"userToken": ()},), "The user's own token, validated as for authz.")
OAUTH_CLIENT: Final = Caller(({"basicClient": ()}, *_KEY),
                             "A configured OAuth client (HTTP Basic) or an API key.")

_PROBLEM_TEXT: Final = {
    400: "malformed input (including an unknown or repeated query parameter)",
    401: "missing or invalid credential", 403: "the credential lacks the scope",
    404: "unknown record", 413: "body or token too large", 415: "wrong content type",
    503: "store unavailable; retry after Retry-After"}
_CHALLENGE: Final[Mapping[str, Schema]] = {"WWW-Authenticate": HEADER_TEXT}


def problem_reply(status: int, description: str | None = None, *,
                  schema: Schema | None = None) -> Reply:
    """An RFC 9457 answer, with the headers the pipeline sends with that status."""
    headers: dict[int, Mapping[str, Schema]] = {
        401: _CHALLENGE, 403: _CHALLENGE,
        503: {"Retry-After": {"type": "string", "pattern": "^[0-9]+$"}}}
    return Reply(status, description or _PROBLEM_TEXT[status], PROBLEM,
                 schema or ref("Problem"), headers.get(status, {}))


def problems(*statuses: int) -> tuple[Reply, ...]:
    return tuple(problem_reply(status) for status in statuses)


def json_reply(status: int, description: str, schema: Schema, *,
               headers: Mapping[str, Schema] | None = None) -> Reply:
    return Reply(status, description, JSON, schema, headers or {})
