"""The fast lane answers exactly as the application's routes do, and only where it may.

Every web test already runs behind the lane (``tests.lane_server``). These tests pin the
properties that make that safe: the lane takes exactly the requests the router would send
to its handlers without decoding (everything else reaches the application, which is
observed here), with the methods those routes are registered for; a request answered by
the lane gets the same status, headers and body as the same request answered by the
application's route (a percent-encoded path takes the route and means the same thing); and
an application with anything the lane would skip (a middleware, an ``on_response_prepare``
receiver, a route that could answer first) is refused at start.
tests/security/test_lane_differential.py compares the two over raw sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from yarl import URL

from revoker.config import Settings
from revoker.web.app import create_app
from revoker.web.authz import authz as authz_handler
from revoker.web.check import check_jti
from revoker.web.fastlane import FastLane, LaneConflict
from tests.jwt_factory import KeySet
from tests.lane_server import LaneTestServer
from tests.web import jwt_env as fx
from tests.web.conftest import (
    ADMIN_KEY,
    CHECK_KEY,
    KEYS_ENV,
    REVOKE_KEY,
    MakeClient,
    auth,
    scrape,
    value,
)
from tests.web.jwt_env import GATEWAY, bearer

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures
#: Headers whose values differ between any two answers.
VOLATILE = {"date", "x-request-id"}


class Recorder:
    """Wraps the lane's fallback: records which paths reached the application."""

    def __init__(self, lane: FastLane) -> None:
        self.paths: list[str] = []
        self.application: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] = (
            lane.application)
        lane.application = self

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.paths.append(request.raw_path)
        return await self.application(request)


def lane_of(client: Any) -> FastLane:
    lane = client.server.runner.server.request_handler
    assert isinstance(lane, FastLane)
    return lane


async def answer(client: Any, method: str, path: str,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    resp = await client.request(method, URL(path, encoded=True), headers=headers or {})
    body = await resp.read()
    kept = {k: v for k, v in resp.headers.items() if k.lower() not in VOLATILE}
    assert "X-Request-Id" in resp.headers
    return resp.status, kept, body


@pytest.fixture
async def client(make_client: Any, store_url: str, jwt_env: dict[str, str]) -> Any:
    client = await make_client(store_url, **jwt_env)
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "gone"},
                             headers=auth(ADMIN_KEY))
    assert resp.status == 201
    return client


@pytest.mark.parametrize("headers", [
    {"X-Revoker-Key": CHECK_KEY}, auth(CHECK_KEY), auth(ADMIN_KEY), {},
    {"X-Revoker-Key": "rvk_not_a_key"}, {"X-Revoker-Key": REVOKE_KEY}, {"Authorization": "Basic x"},
], ids=["gateway", "bearer", "admin", "no-key", "wrong-key", "revoke-scope", "basic"])
@pytest.mark.parametrize("jti", ["gone", "live-1"])
async def test_check_answers_as_the_route_does(client: Any, headers: dict[str, str],
                                               jti: str) -> None:
    recorder = Recorder(lane_of(client))
    escaped = "".join(f"%{ord(c):02X}" for c in jti)  # same jti, but the route must decode it
    by_lane = await answer(client, "GET", f"/v1/check/{jti}", headers)
    by_route = await answer(client, "GET", f"/v1/check/{escaped}", headers)
    assert recorder.paths == [f"/v1/check/{escaped}"]
    assert by_lane == by_route
    if by_lane[0] == 200:
        assert (b'"revoked":true' in by_lane[2]) == (jti == "gone")


@pytest.mark.parametrize("token", ["valid", "revoked", "garbage", "none"])
@pytest.mark.parametrize("gateway", ["key", "no-key"])
async def test_authz_answers_as_the_route_does(client: Any, keyset: KeySet, token: str,
                                               gateway: str) -> None:
    recorder = Recorder(lane_of(client))
    tokens = {"valid": keyset.token(jti="live-2"), "revoked": keyset.token(jti="gone"),
              "garbage": "not.a.token", "none": ""}
    headers = bearer(tokens[token]) if tokens[token] else dict(GATEWAY)
    if gateway == "no-key":
        headers.pop("X-Revoker-Key")
    by_lane = await answer(client, "GET", "/v1/authz/api/orders", headers)
    by_route = await answer(client, "GET", "/v1/authz/api/%6Frders", headers)
    assert recorder.paths == ["/v1/authz/api/%6Frders"]
    assert by_lane == by_route
    assert by_lane[0] == (200 if (token, gateway) == ("valid", "key") else 401)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/check/abc"), ("GET", "/v1/check/a%62c"), ("GET", "/v1/check/"),
    ("GET", "/v1/check/a/b"), ("GET", "/v1/authz/%2e%2e/x"), ("GET", "/v1/authz%2fx"),
    ("GET", "/v1/authzz"), ("GET", "/v1/checks/abc"), ("GET", "/healthz"),
    ("CONNECT", "/v1/authz"), ("GET", "//v1/authz"),
])
async def test_other_shapes_reach_the_application(client: Any, method: str, path: str) -> None:
    """Escapes, paths the lane's resources do not match, methods they are not registered
    for, and a CONNECT (whose target is an authority, not the path it looks like)."""
    recorder = Recorder(lane_of(client))
    assert await raw_status(client, method, path, auth(CHECK_KEY)) < 500
    assert recorder.paths == [path]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/check/abc?x=1"), ("HEAD", "/v1/check/abc"), ("GET", "/v1/check/.."),
    ("GET", "/v1/check/.x"), ("GET", "/v1/check/" + "x" * 513), ("GET", "/v1/check/batch"),
    ("GET", "/v1/authz/../check/abc"), ("GET", "/v1/authz//x"), ("TRACE", "/v1/authz"),
    ("GET", "/v1/authz?%zz"),
])
async def test_router_shapes_take_the_lane(client: Any, method: str, path: str) -> None:
    """Whatever the router sends to the lane's handlers without decoding, the lane takes:
    the router does not normalise dot segments, and a check route is registered for HEAD."""
    recorder = Recorder(lane_of(client))
    assert await raw_status(client, method, path, auth(CHECK_KEY)) < 500
    assert recorder.paths == []


async def raw_status(client: Any, method: str, path: str, headers: dict[str, str]) -> int:
    """The request line exactly as written (HTTP clients normalise dot segments away)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    writer.write("\r\n".join(lines).encode())
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/check/abc"), ("GET", "/v1/check/A-b_c.d~e"), ("GET", "/v1/authz"),
    ("POST", "/v1/authz"), ("DELETE", "/v1/authz/"), ("GET", "/v1/authz?x=1&y=/z"),
    ("PUT", "/v1/authz/api/v2/orders.json"),
])
async def test_plain_shapes_take_the_lane(client: Any, method: str, path: str) -> None:
    recorder = Recorder(lane_of(client))
    resp = await client.request(method, path, headers=auth(CHECK_KEY))
    assert resp.status in (200, 401)
    assert recorder.paths == []


async def test_expect_continue_is_left_to_the_application(client: Any, keyset: KeySet) -> None:
    recorder = Recorder(lane_of(client))
    resp = await client.post("/v1/authz", data=b"x" * 10, expect100=True,
                             headers=bearer(keyset.token()))
    assert resp.status == 200
    assert recorder.paths == ["/v1/authz"]


async def test_lane_answers_carry_the_callers_request_id(client: Any) -> None:
    resp = await client.get("/v1/check/abc", headers={**auth(CHECK_KEY),
                                                      "X-Request-Id": "gw-123"})
    assert resp.headers["X-Request-Id"] == "gw-123"
    resp = await client.get("/v1/check/abc", headers={"X-Request-Id": "gw-124"})
    assert resp.status == 401 and resp.headers["X-Request-Id"] == "gw-124"
    generated = (await client.get("/v1/check/abc", headers=auth(CHECK_KEY))).headers
    assert len(generated["X-Request-Id"]) == 32


async def test_lane_answers_are_counted_under_the_route(client: Any, keyset: KeySet) -> None:
    _, before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/v1/check/abc", headers=auth(CHECK_KEY))).status == 200
    assert (await client.get("/v1/check/abc")).status == 401
    assert (await client.post("/v1/authz", headers=bearer(keyset.token()))).status == 200
    assert (await client.get("/v1/authz/x", headers=bearer(keyset.token()))).status == 200
    _, after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "revoker_http_requests_total"
    assert delta(requests, route="/v1/check/{jti}", method="GET", status="200") == 3
    assert delta(requests, route="/v1/check/{jti}", method="GET", status="401") == 1
    assert delta(requests, route="/v1/authz", method="POST", status="200") == 1
    assert delta(requests, route="/v1/authz/{tail}", method="GET", status="200") == 1
    assert delta("revoker_http_request_duration_seconds_count", route="/v1/check/{jti}") == 4
    assert delta("revoker_checks_total", result="ok") == 5


# -- what the lane would skip is refused at start ------------------------------------------

def plain_app() -> web.Application:
    env = {"REVOKER_API_KEYS": KEYS_ENV, "REVOKER_ACCESS_LOG": "false"}
    return create_app(Settings.from_env(env))


@web.middleware
async def deny_all(request: web.Request, handler: Handler) -> web.StreamResponse:
    return web.json_response({"denied": True}, status=403)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Stamped"] = "yes"


async def statuses(client: TestClient[Any, Any], *paths: str) -> list[tuple[int, str | None]]:
    answers = []
    for path in paths:
        resp = await client.get(URL(path, encoded=True), headers=auth(CHECK_KEY))
        answers.append((resp.status, resp.headers.get("X-Stamped")))
    return answers


async def refused(app: web.Application) -> str:
    """Start ``app`` behind the lane; return the refusal's message."""
    server = LaneTestServer(app)
    with pytest.raises(LaneConflict) as refusal:
        await server.start_server()
    await server.close()
    return str(refusal.value)


async def test_a_foreign_middleware_is_refused(make_client: MakeClient) -> None:
    """Behind the lane, a deny-all middleware would answer 403 on ``/v1/check/%61bc`` (the
    router's way) and 200 on ``/v1/check/abc`` (the lane's): the lane refuses to start."""
    app = plain_app()
    app.middlewares.append(deny_all)
    assert "deny_all" in await refused(app)
    without_lane = await make_client(lane=False, customize=lambda a: a.middlewares.append(
        deny_all))
    assert await statuses(without_lane, "/v1/check/abc", "/v1/check/%61bc") == [(403, None)] * 2


async def test_a_response_prepare_receiver_is_refused(make_client: MakeClient) -> None:
    app = plain_app()
    app.on_response_prepare.append(stamp)
    assert "on_response_prepare" in await refused(app)
    without_lane = await make_client(lane=False,
                                     customize=lambda a: a.on_response_prepare.append(stamp))
    assert await statuses(without_lane, "/v1/check/abc", "/v1/check/%61bc") == [(200, "yes")] * 2


async def answer_special(request: web.Request) -> web.Response:
    return web.json_response({"special": True})


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/check/special"), ("HEAD", "/v1/check/special"), ("*", "/v1/authz/admin"),
    ("POST", "/v1/authz"), ("GET", "/v1/check/{a}/x"), ("GET", "/v1/authz/{rest:.*}"),
])
async def test_a_route_that_could_answer_first_is_refused(method: str, path: str) -> None:
    """A route for a path the lane would take, with a method it takes, would be skipped."""
    app = plain_app()
    app.router.add_route(method, path, answer_special)
    assert "could answer some of its requests first" in await refused(app)


async def test_a_route_the_lane_cannot_reach_is_served(make_client: MakeClient) -> None:
    """Routes under the same paths for other methods, or elsewhere, leave the lane alone."""
    client = await make_client(customize=lambda app: (
        app.router.add_post("/v1/check/special", answer_special),
        app.router.add_get("/v1/checks/{x}", answer_special)))
    recorder = Recorder(lane_of(client))
    assert (await client.post("/v1/check/special")).status == 200
    assert (await client.get("/v1/check/special", headers=auth(CHECK_KEY))).status == 200
    assert recorder.paths == ["/v1/check/special"]


async def test_lane_methods_are_the_routes_methods(client: Any) -> None:
    """The lane's methods come from the router's registrations, not a list of its own."""
    routed: dict[str, set[str]] = {}
    for resource in client.app.router.resources():
        for route in resource:
            if route.handler in (check_jti, authz_handler):
                routed.setdefault(resource.canonical, set()).add(route.method)
    laned = {shape.label: set(shape.methods) for shape in lane_of(client).shapes}
    assert laned == routed == {"/v1/check/{jti}": {"GET", "HEAD"}, "/v1/authz": {"*"},
                               "/v1/authz/{tail}": {"*"}}
