"""Unknown and repeated query parameters are a 400 on every declared ``/v1/`` route.

Before, they were ignored: a caller who wrote ``GET /v1/events?value=alice`` believed it
had filtered the audit log and got every event; ``?limit=1&limit=1000`` meant whichever
the handler read. The rule comes from each route's declaration and is enforced once, in
the request pipeline, both through the router and through the fast lane
(``/v1/check/{jti}``). ``/v1/authz`` is exempt: gateways send it the original request's
query. The cases below are generated from the router, so a new route is covered as soon
as it is declared.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from revoker.config import Settings
from revoker.web.app import create_app
from revoker.web.openapi import ANY_METHODS
from revoker.web.spec import STRICT_QUERY_PREFIX, Operation, declaration_of
from tests.web.conftest import ADMIN_KEY, KEYS_ENV, MakeClient, auth, stored
from tests.web.conftest import make_client as make_client  # the fixture, re-exported

pytestmark = pytest.mark.security

#: A valid value for each path variable of the routes.
PATH_VALUES = {"jti": "abc", "kind": "jti", "value": "abc", "tail": "some/where", "asset": "app.js"}
#: A valid value for each declared query parameter.
QUERY_VALUES = {"limit": "5", "after": "0", "kind": "jti", "cursor": "0",
                "everywhere": "false", "prefix": "a", "actor": "admin-console", "value": "abc"}


def declared_routes() -> list[tuple[str, str, Operation]]:
    """(method, concrete path, declaration) of every declared route, HEAD aside."""
    app = create_app(Settings.from_env({"REVOKER_API_KEYS": KEYS_ENV}))
    out = []
    for resource in app.router.resources():
        for route in resource:
            found = declaration_of(route.handler)
            if not isinstance(found, Operation) or route.method == "HEAD":
                continue
            path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: PATH_VALUES[m[1]],
                          resource.canonical)
            methods = [m.upper() for m in ANY_METHODS] if route.method == "*" \
                else [route.method]
            out += [(method, path, found) for method in methods]
    return out


ROUTES = declared_routes()
STRICT = [(m, p, op) for m, p, op in ROUTES
          if p.startswith(STRICT_QUERY_PREFIX) and not op.any_query]
REPEATABLE = [(m, p, op, param.name) for m, p, op in STRICT for param in op.query]


def ids(case: tuple[Any, ...]) -> str:
    return " ".join(str(part) for part in case if isinstance(part, str))


async def send(client: TestClient[Any, Any], method: str, path: str, query: str,
               ) -> web.StreamResponse | Any:
    return await client.request(method, f"{path}?{query}", headers=auth(ADMIN_KEY),
                                json={"kind": "jti", "value": "from-the-body"})


def test_the_rule_covers_the_api() -> None:
    """Guard against an empty parametrization: the API routes are here, authz is not."""
    paths = {path for _, path, _ in STRICT}
    assert {"/v1/events", "/v1/revocations", "/v1/check/abc", "/v1/whoami",
            "/v1/events/stream", "/v1/logout"} <= paths
    assert not any(path.startswith("/v1/authz") for path in paths)
    assert {name for *_, name in REPEATABLE} >= {"limit", "after", "kind", "cursor"}


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "router"])
@pytest.mark.parametrize("case", STRICT, ids=ids)
async def test_an_unknown_parameter_is_a_400(make_client: MakeClient, lane: bool,
                                             case: tuple[str, str, Operation]) -> None:
    method, path, _ = case
    client = await make_client(lane=lane)
    response = await send(client, method, path, "valeu=alice")
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "unknown query parameter 'valeu'" in (await response.json())["detail"]
    assert await stored(client, "jti", "from-the-body") is None  # nothing changed


@pytest.mark.parametrize("case", REPEATABLE, ids=ids)
async def test_a_repeated_parameter_is_a_400(make_client: MakeClient,
                                             case: tuple[str, str, Operation, str]) -> None:
    method, path, _, name = case
    client = await make_client()
    value = QUERY_VALUES[name]
    response = await send(client, method, path, f"{name}={value}&{name}={value}")
    assert response.status == 400
    assert "more than once" in (await response.json())["detail"]


@pytest.mark.parametrize("case", REPEATABLE, ids=ids)
async def test_a_declared_parameter_is_taken(make_client: MakeClient,
                                             case: tuple[str, str, Operation, str]) -> None:
    method, path, _, name = case
    if path == "/v1/events/stream":
        pytest.skip("an endless stream; its parameters have their own tests")
    client = await make_client()
    response = await send(client, method, path, f"{name}={QUERY_VALUES[name]}")
    if response.status == 400:
        assert "query parameter" not in (await response.json())["detail"]


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "router"])
async def test_a_check_with_a_query_reaches_the_rule(make_client: MakeClient,
                                                     lane: bool) -> None:
    """The fast lane serves ``/v1/check/{jti}`` whatever the query: the rule runs there."""
    client = await make_client(lane=lane)
    refused = await client.get("/v1/check/abc?jti=other", headers=auth(ADMIN_KEY))
    assert refused.status == 400
    assert refused.headers["X-Request-Id"]
    plain = await client.get("/v1/check/abc?", headers=auth(ADMIN_KEY))
    assert plain.status == 200


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "router"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_authz_takes_the_original_query(make_client: MakeClient, lane: bool,
                                              method: str) -> None:
    client = await make_client(lane=lane)
    for path in ("/v1/authz?value=a&value=b", "/v1/authz/app/page?x=1&x=2"):
        response = await client.request(method, path, headers={"X-Revoker-Key": ADMIN_KEY})
        assert response.status == 401  # no user token; the query did not matter
        assert "invalid_token" in response.headers["WWW-Authenticate"]


async def test_routes_outside_the_api_take_any_query(make_client: MakeClient) -> None:
    """Identity providers register back-channel URIs with their own query parameters."""
    client = await make_client()
    assert (await client.get("/healthz?probe=k8s")).status == 200
    response = await client.post("/oidc/backchannel-logout?tenant=a",
                                 data={"logout_token": "not-a-jwt"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"
