"""``/openapi.json`` describes every route the app registers (and says so when one is not)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from revoker.config import Settings
from revoker.web.app import create_app
from revoker.web.openapi import AUTHZ_METHODS, build_document
from tests.web.conftest import KEYS_ENV, MakeClient

IGNORED_METHODS = {"HEAD"}  # aiohttp adds HEAD to every GET route on its own


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) of every route, with ``*`` routes expanded to each method."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        methods = AUTHZ_METHODS if route.method == "*" else (route.method.lower(),)
        out |= {(path, m) for m in methods if m.upper() not in IGNORED_METHODS
                or route.method == "*"}
    return out


def undocumented(app: web.Application, document: dict[str, Any]) -> list[str]:
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item}
    return sorted(f"{m.upper()} {p}" for p, m in registered(app) - documented)


def app_on_memory() -> web.Application:
    return create_app(Settings.from_env({"REVOKER_API_KEYS": KEYS_ENV}))


def test_every_registered_route_has_a_schema() -> None:
    assert undocumented(app_on_memory(), build_document()) == []


def test_a_route_without_a_schema_is_reported() -> None:
    app = app_on_memory()

    async def hidden(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/v1/not-in-the-contract", hidden)
    assert undocumented(app, build_document()) == ["POST /v1/not-in-the-contract"]


def test_every_contract_route_is_documented() -> None:
    """The contract's table, including routes whose handlers other modules provide."""
    paths = build_document()["paths"]
    expected = {
        "/healthz": "get", "/readyz": "get", "/metrics": "get", "/openapi.json": "get",
        "/v1/check/{jti}": "get", "/v1/check": "post", "/v1/check/batch": "post",
        "/v1/authz": "post", "/v1/authz/{tail}": "get", "/v1/revocations": "post",
        "/v1/revocations/batch": "post", "/v1/revocations/{kind}/{value}": "delete",
        "/v1/events": "get", "/v1/events/stream": "get", "/v1/logout": "post",
        "/oauth2/revoke": "post", "/oauth2/introspect": "post",
        "/oidc/backchannel-logout": "post", "/ssf/events": "post",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
    assert "get" in paths["/v1/revocations"]
    assert "get" in paths["/v1/revocations/{kind}/{value}"]


def test_every_reference_resolves() -> None:
    document = build_document()
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
    assert body == build_document()
