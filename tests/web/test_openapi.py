"""``/openapi.json`` is generated from the routes' declarations: every route has one, the
document is valid OpenAPI 3.1, and a route without a declaration is reported."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from aiohttp import web

from revoker.bodies import MAX_TTL_S
from revoker.config import Settings
from revoker.web.app import create_app
from revoker.web.check import MAX_CHECK_BATCH
from revoker.web.openapi import ANY_METHODS, DeclarationError, build_document, undeclared
from revoker.web.schemas import PUBLIC
from revoker.web.spec import Operation, Reply, declare, exclude
from tests.web.conftest import KEYS_ENV, MakeClient

IGNORED_METHODS = {"HEAD"}  # aiohttp adds HEAD to every GET route on its own


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) of every route, with ``*`` routes expanded to each method."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        methods = ANY_METHODS if route.method == "*" else (route.method.lower(),)
        out |= {(path, m) for m in methods if m.upper() not in IGNORED_METHODS
                or route.method == "*"}
    return out


def app_on_memory() -> web.Application:
    return create_app(Settings.from_env({"REVOKER_API_KEYS": KEYS_ENV}))


def test_every_registered_route_is_declared_and_documented() -> None:
    app = app_on_memory()
    assert undeclared(app.router) == []
    paths = build_document(app.router)["paths"]
    documented = {(path, method) for path, item in paths.items() for method in item}
    assert registered(app) == documented


def test_a_route_without_a_declaration_is_reported() -> None:
    app = app_on_memory()

    async def hidden(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/v1/not-in-the-contract", hidden)
    assert undeclared(app.router) == ["POST /v1/not-in-the-contract"]
    assert "/v1/not-in-the-contract" not in build_document(app.router)["paths"]


def test_an_excluded_route_is_left_out_explicitly() -> None:
    app = app_on_memory()

    @exclude("a static page, not an API")
    async def page(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/a-static-page", page)
    assert undeclared(app.router) == []
    assert "/a-static-page" not in build_document(app.router)["paths"]


def test_a_path_variable_without_a_declared_parameter_is_refused() -> None:
    app = app_on_memory()

    @declare(Operation("no path parameters", "operations", PUBLIC, (Reply(204, "done"),)))
    async def thing(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_get("/v1/things/{name}", thing)
    with pytest.raises(DeclarationError, match="name"):
        build_document(app.router)


def test_every_contract_route_is_documented() -> None:
    """The contract's table, including routes whose handlers other modules provide."""
    paths = build_document(app_on_memory().router)["paths"]
    expected = {
        "/healthz": "get", "/readyz": "get", "/metrics": "get", "/openapi.json": "get",
        "/v1/check/{jti}": "get", "/v1/check": "post", "/v1/check/batch": "post",
        "/v1/authz": "post", "/v1/authz/{tail}": "get", "/v1/revocations": "post",
        "/v1/revocations/batch": "post", "/v1/revocations/{kind}/{value}": "delete",
        "/v1/events": "get", "/v1/events/stream": "get", "/v1/logout": "post",
        "/oauth2/revoke": "post", "/oauth2/introspect": "post",
        "/oidc/backchannel-logout": "post", "/ssf/events": "post", "/v1/whoami": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
    assert "get" in paths["/v1/revocations"]
    assert "get" in paths["/v1/revocations/{kind}/{value}"]


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document(app_on_memory().router)
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


def test_an_invalid_document_is_caught_by_the_validator() -> None:
    """The validator above does validate: a parameter without its ``in`` is refused."""
    document = build_document(app_on_memory().router)
    del document["paths"]["/v1/events"]["get"]["parameters"][0]["in"]
    with pytest.raises(ValueError, match="in"):
        schemathesis.openapi.from_dict(document).validate()


def test_limits_come_from_the_code() -> None:
    """The drift a hand-written document had: ``ttl`` 0 is accepted (stores nothing)."""
    document = build_document(app_on_memory().router)
    ttl = document["components"]["schemas"]["RevokeByValue"]["properties"]["ttl"]
    assert (ttl["minimum"], ttl["maximum"]) == (0, MAX_TTL_S)
    body = document["paths"]["/v1/check/batch"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["items"]
    assert items["maxItems"] == MAX_CHECK_BATCH
    introspect = document["paths"]["/oauth2/introspect"]["post"]["responses"]
    assert list(introspect["400"]["content"]) == ["application/problem+json"]


def test_every_reference_resolves() -> None:
    document = build_document(app_on_memory().router)
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_document_is_served_without_a_key(make_client: MakeClient) -> None:
    client = await make_client("memory://")
    response = await client.get("/openapi.json")
    assert response.status == 200
    body = await response.json()
    assert body["openapi"] == "3.1.0"
    assert body == build_document(client.app.router)
