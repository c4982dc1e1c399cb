"""``GET /openapi.json``: an OpenAPI 3.1 description of every route of the contract.

Written by hand from the contract (not generated from handlers) so that it states what
callers may rely on; ``tests/web/test_openapi.py`` fails when a route is registered
without a description here, and a schema-driven fuzz run checks the two agree.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from revoker import __version__
from revoker.model import KINDS, MAX_REASON_CHARS
from revoker.web.jsonio import respond

routes = web.RouteTableDef()

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
PROBLEM: Final = "application/problem+json"
AUTHZ_METHODS: Final = ("get", "post", "put", "patch", "delete", "head", "options")

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _form_body(schema: Schema) -> Schema:
    return {"required": True, "content": {FORM: {"schema": schema}}}


def _ok(description: str, schema: Schema | None = None, *, media: str = JSON,
        headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    if headers:
        response["headers"] = headers
    return response


def _problems(*statuses: int) -> dict[str, Schema]:
    """The contract's error statuses, each an RFC 9457 problem document."""
    texts = {400: "malformed input", 401: "missing or invalid credential",
             403: "the credential lacks the scope", 404: "unknown record",
             405: "method not allowed", 413: "body or token too large",
             415: "wrong content type", 503: "store unavailable; retry after Retry-After"}
    out: dict[str, Schema] = {}
    for status in statuses:
        response = _ok(texts[status], _ref("Problem"), media=PROBLEM)
        if status == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        out[str(status)] = response
    return out


def _op(summary: str, responses: dict[str, Schema], *, scope: str | None,
        body: Schema | None = None, parameters: list[Schema] | None = None,
        tag: str = "revocations", security: list[Schema] | None = None) -> Schema:
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if scope is not None:
        operation["description"] = f"Needs an API key with the `{scope}` scope."
        operation["security"] = [{"bearerKey": []}, {"headerKey": []}]
    if security is not None:
        operation["security"] = security
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _schemas() -> dict[str, Schema]:
    value = {"type": "string", "minLength": 1, "maxLength": 512}
    time_s = {"type": "integer", "minimum": 0}
    kind = {"type": "string", "enum": list(KINDS)}
    claims = {"type": "object", "properties": {
        "jti": value, "sub": value, "sid": value, "kid": value, "client_id": value,
        "azp": value, "iat": {"type": "number"}}}
    return {
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"},
                                   "detail": {"type": "string"}}},
        "Record": {"type": "object",
                   "required": ["kind", "value", "revoked_at", "expires_at"],
                   "properties": {"kind": kind, "value": value, "revoked_at": time_s,
                                  "expires_at": time_s,
                                  "issued_before": {"type": ["integer", "null"]},
                                  "reason": {"type": ["string", "null"]},
                                  "actor": {"type": ["string", "null"]}}},
        "RevokeByValue": {"type": "object", "required": ["kind", "value"],
                          "additionalProperties": False,
                          "properties": {"kind": kind, "value": value, "expires_at": time_s,
                                         "ttl": {"type": "integer", "minimum": 1},
                                         "issued_before": time_s,
                                         "reason": {"type": "string",
                                                    "maxLength": MAX_REASON_CHARS}}},
        "RevokeByToken": {"type": "object", "required": ["token"],
                          "additionalProperties": False,
                          "properties": {"token": {"type": "string", "maxLength": 16384},
                                         "reason": {"type": "string",
                                                    "maxLength": MAX_REASON_CHARS}}},
        "RevokeBody": {"oneOf": [_ref("RevokeByValue"), _ref("RevokeByToken")]},
        "NotStored": {"type": "object", "required": ["stored"],
                      "properties": {"stored": {"const": False}, "kind": kind,
                                     "value": value, "detail": {"type": "string"}}},
        "CheckBody": {"oneOf": [
            {"type": "object", "required": ["token"], "additionalProperties": False,
             "properties": {"token": {"type": "string", "maxLength": 16384}}},
            {"type": "object", "required": ["claims"], "additionalProperties": False,
             "properties": {"claims": claims}}]},
        "CheckResult": {"type": "object", "required": ["revoked", "matches"],
                        "properties": {"revoked": {"type": "boolean"},
                                       "matches": {"type": "array", "items": _ref("Record")}}},
        "Event": {"type": "object", "required": ["id", "type", "record", "at"],
                  "properties": {"id": {"type": "string"},
                                 "type": {"enum": ["revoked", "unrevoked"]},
                                 "record": _ref("Record"), "at": time_s}},
        "OAuthError": {"type": "object", "required": ["error"],
                       "properties": {"error": {"type": "string"},
                                      "error_description": {"type": "string"}}},
    }


def _health_paths() -> dict[str, Schema]:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "/healthz": {"get": _op("Liveness", {"200": _ok("the process runs", status)},
                                scope=None, tag="operations", security=[])},
        "/readyz": {"get": _op("Readiness: the store answers and local state is in sync",
                               {"200": _ok("ready", status),
                                "503": _ok("not ready, with detail", _ref("Problem"),
                                           media=PROBLEM)},
                               scope=None, tag="operations", security=[])},
        "/metrics": {"get": _op("Prometheus metrics",
                                {"200": _ok("text exposition format", {"type": "string"},
                                            media="text/plain")},
                                scope=None, tag="operations", security=[])},
        "/v1/whoami": {"get": _op(
            "The name and scopes of the presented API key",
            {"200": _ok("the key", {"type": "object", "required": ["name", "scopes"],
                                    "properties": {"name": {"type": "string"},
                                                   "scopes": {"type": "array", "items": {
                                                       "type": "string",
                                                       "enum": ["check", "revoke", "admin"]}}}}),
             **_problems(400, 401)},
            scope="any", tag="operations")},
        "/openapi.json": {"get": _op("This document", {"200": _ok("OpenAPI 3.1",
                                                               {"type": "object"})},
                                     scope=None, tag="operations", security=[])},
    }


def _check_paths() -> dict[str, Schema]:
    jti = {"type": "object", "required": ["jti", "revoked", "record"],
           "properties": {"jti": {"type": "string"}, "revoked": {"type": "boolean"},
                          "record": {"oneOf": [_ref("Record"), {"type": "null"}]}}}
    batch_in = {"type": "object", "required": ["items"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 1000,
                                         "items": _ref("CheckBody")}}}
    batch_out = {"type": "object", "required": ["results"],
                 "properties": {"results": {"type": "array", "items": {
                     "oneOf": [_ref("CheckResult"), _ref("Problem")]}}}}
    errors = _problems(400, 401, 403, 413, 415, 503)
    return {
        "/v1/check/{jti}": {"get": _op(
            "Is this jti revoked?", {"200": _ok("the answer", jti), **errors}, scope="check",
            parameters=[_path_param("jti", {"type": "string", "minLength": 1,
                                            "maxLength": 512})], tag="check")},
        "/v1/check": {"post": _op(
            "Check a token (decoded, not validated) or claims against every kind",
            {"200": _ok("the answer", _ref("CheckResult")), **errors}, scope="check",
            body=_json_body(_ref("CheckBody")), tag="check")},
        "/v1/check/batch": {"post": _op(
            "Check up to 1000 items in order", {"200": _ok("one result per item", batch_out),
                                                **errors},
            scope="check", body=_json_body(batch_in), tag="check")},
    }


def _authz_paths() -> dict[str, Schema]:
    allowed = {"X-Auth-Subject": {"schema": {"type": "string"}},
               "X-Auth-Jti": {"schema": {"type": "string"}}}
    refused = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    responses = {"200": _ok("the token is valid and not revoked", headers=allowed),
                 "401": _ok("missing, invalid, expired or revoked token", headers=refused),
                 **_problems(403, 503)}
    user_token = [{"name": "Authorization", "in": "header", "required": False,
                   "description": "Bearer <the user's JWT>", "schema": {"type": "string"}}]

    def item(summary: str, extra: list[Schema]) -> Schema:
        return {method: _op(summary, responses, scope="check", tag="gateway",
                            parameters=[*user_token, *extra],
                            security=[{"headerKey": []}, {}])
                for method in AUTHZ_METHODS}

    return {
        "/v1/authz": item("Forward-auth for nginx, Envoy and Traefik: validate and check", []),
        "/v1/authz/{tail}": item("Forward-auth with the original path appended (Envoy)",
                                 [_path_param("tail", {"type": "string"})]),
    }


def _revocation_paths() -> dict[str, Schema]:
    kind_value = [_path_param("kind", {"type": "string", "enum": list(KINDS)}),
                  _path_param("value", {"type": "string", "minLength": 1, "maxLength": 512})]
    batch_in = {"type": "object", "required": ["items"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 10000,
                                         "items": _ref("RevokeBody")}}}
    batch_out = {"type": "object", "required": ["results"],
                 "properties": {"results": {"type": "array", "items": {"type": "object"}}}}
    page = {"type": "object", "required": ["items", "cursor"],
            "properties": {"items": {"type": "array", "items": _ref("Record")},
                           "cursor": {"type": ["string", "null"]}}}
    errors = _problems(400, 401, 403, 413, 415, 503)
    return {
        "/v1/revocations": {
            "post": _op("Revoke by kind and value, or a token's jti until its exp",
                        {"201": _ok("stored", _ref("Record")),
                         "200": _ok("already existed (expiry merged), or expired: nothing "
                                    "stored", {"oneOf": [_ref("Record"), _ref("NotStored")]}),
                         **errors},
                        scope="revoke", body=_json_body(_ref("RevokeBody"))),
            "get": _op("List live records (admin)", {"200": _ok("a page", page), **errors},
                       scope="admin", parameters=[
                           _query("kind", {"type": "string", "enum": list(KINDS)}),
                           _query("cursor", {"type": "string"}),
                           _query("limit", {"type": "integer", "minimum": 1,
                                            "maximum": 1000})])},
        "/v1/revocations/batch": {"post": _op(
            "Revoke up to 10000 items; a bad item fails alone",
            {"200": _ok("one result per item", batch_out), **errors},
            scope="revoke", body=_json_body(batch_in))},
        "/v1/revocations/{kind}/{value}": {
            "get": _op("Read a record", {"200": _ok("the record", _ref("Record")),
                                         **_problems(400, 401, 403, 404, 503)},
                       scope="revoke", parameters=kind_value),
            "delete": _op("Unrevoke", {"204": _ok("deleted"),
                                       **_problems(400, 401, 403, 404, 503)},
                          scope="admin", parameters=kind_value)},
    }


def _event_paths() -> dict[str, Schema]:
    page = {"type": "object", "required": ["events", "next"],
            "properties": {"events": {"type": "array", "items": _ref("Event")},
                           "next": {"type": ["string", "null"]}}}
    event_id = {"type": "string", "pattern": r"^[0-9]+(-[0-9]+)?$"}
    return {
        "/v1/events": {"get": _op(
            "Audit log of revocation events", {"200": _ok("a page", page),
                                               **_problems(400, 401, 403, 503)},
            scope="admin", tag="events",
            parameters=[_query("after", event_id),
                        _query("limit", {"type": "integer", "minimum": 1,
                                         "maximum": 1000})])},
        "/v1/events/stream": {"get": _op(
            "Server-Sent Events of the same events; resumes from Last-Event-ID",
            {"200": _ok("an event stream", {"type": "string"}, media="text/event-stream"),
             **_problems(400, 401, 403, 503)},
            scope="check", tag="events",
            parameters=[_query("after", event_id),
                        {"name": "Last-Event-ID", "in": "header", "required": False,
                         "schema": event_id}])},
        "/v1/denylist": {"get": _op(
            "Every active record as NDJSON, for clients that keep their own mirror",
            {"200": _ok("one record per line", _ref("Record"), media="application/x-ndjson",
                        headers={"X-Revoker-Position": {
                                     "description": "follow /v1/events/stream after this id",
                                     "schema": event_id},
                                 "X-Revoker-Oldest": {
                                     "description": "the oldest event still held",
                                     "schema": event_id}}),
             **_problems(400, 401, 403, 503)},
            scope="check", tag="events")},
    }


def _logout_paths() -> dict[str, Schema]:
    oauth_error = _ok("RFC 6749 error", _ref("OAuthError"))
    token_form = {"type": "object", "required": ["token"],
                  "properties": {"token": {"type": "string"},
                                 "token_type_hint": {"type": "string"}}}
    basic: list[Schema] = [{"basicClient": []}, {"bearerKey": []}, {"headerKey": []}]
    introspection = {"type": "object", "required": ["active"],
                     "properties": {"active": {"type": "boolean"}}}
    return {
        "/v1/logout": {"post": _op(
            "Revoke the presented token's jti (and its sub with everywhere=true)",
            {"204": _ok("revoked"), "401": _ok("missing or invalid token"),
             **_problems(400, 503)},
            scope=None, tag="logout", security=[{"userToken": []}],
            parameters=[_query("everywhere", {"type": "boolean"})])},
        "/oauth2/revoke": {"post": _op(
            "RFC 7009 token revocation", {"200": _ok("revoked, or nothing to revoke"),
                                          "400": oauth_error, "401": oauth_error,
                                          **_problems(413, 415, 503)},
            scope=None, tag="logout", security=basic, body=_form_body(token_form))},
        "/oauth2/introspect": {"post": _op(
            "RFC 7662 token introspection", {"200": _ok("active or not", introspection),
                                             "400": oauth_error, "401": oauth_error,
                                             **_problems(413, 415, 503)},
            scope=None, tag="gateway", security=basic, body=_form_body(token_form))},
        "/oidc/backchannel-logout": {"post": _op(
            "OpenID Connect Back-Channel Logout 1.0",
            {"200": _ok("the session and/or subject is revoked"), "400": oauth_error,
             **_problems(413, 415, 503)},
            scope=None, tag="logout", security=[],
            body=_form_body({"type": "object", "required": ["logout_token"],
                             "properties": {"logout_token": {"type": "string"}}}))},
        "/ssf/events": {"post": _op(
            "Shared Signals push delivery (RFC 8935) of a Security Event Token",
            {"202": _ok("accepted"),
             "400": _ok("RFC 8935 error", {"type": "object", "required": ["err"],
                                           "properties": {"err": {"type": "string"},
                                                          "description": {
                                                              "type": "string"}}}),
             **_problems(413, 415, 503)},
            scope=None, tag="logout", security=[],
            body={"required": True, "content": {"application/secevent+jwt": {
                "schema": {"type": "string"}}}})},
    }


def build_document() -> dict[str, Any]:
    """The whole document; pure, so tests can compare it with the app's routes."""
    paths: dict[str, Schema] = {}
    for part in (_health_paths, _check_paths, _authz_paths, _revocation_paths, _event_paths,
                 _logout_paths):
        paths.update(part())
    return {
        "openapi": "3.1.0",
        "info": {"title": "revoker", "version": __version__,
                 "description": "Token revocation service: a shared, self-expiring JWT "
                                "denylist."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerKey": {"type": "http", "scheme": "bearer",
                              "description": "An API key as a bearer token"},
                "headerKey": {"type": "apiKey", "in": "header", "name": "X-Revoker-Key"},
                "basicClient": {"type": "http", "scheme": "basic",
                                "description": "A configured OAuth client"},
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


_DOCUMENT: Final = build_document()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return respond(_DOCUMENT)
