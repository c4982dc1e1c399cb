"""The fast lane answers exactly as the application's routes do, and only where it may.

Every web test already runs behind the lane (``tests.lane_server``). These tests pin the
two properties that make that safe: the lane answers only the plain shapes it claims
(everything else reaches the application, which is observed here), and a request answered
by the lane gets the same status, headers and body as the same request answered by the
application's route (a percent-encoded path takes the route and means the same thing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from revoker.web.fastlane import FastLane
from tests.jwt_factory import KeySet
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, REVOKE_KEY, auth
from tests.web.jwt_env import GATEWAY, bearer
from tests.web.test_metrics import scrape, value

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
    ("GET", "/v1/check/abc?x=1"), ("HEAD", "/v1/check/abc"), ("POST", "/v1/check/abc"),
    ("GET", "/v1/check/a%62c"), ("GET", "/v1/check/.."), ("GET", "/v1/check/.x"),
    ("GET", "/v1/check/"), ("GET", "/v1/check/a/b"), ("GET", "/v1/check/" + "x" * 513),
    ("GET", "/v1/authz/../check/abc"), ("GET", "/v1/authz/%2e%2e/x"), ("GET", "/v1/authz//x"),
    ("GET", "/v1/authzz"), ("GET", "/v1/checks/abc"), ("GET", "/healthz"),
])
async def test_other_shapes_reach_the_application(client: Any, method: str, path: str) -> None:
    recorder = Recorder(lane_of(client))
    assert await raw_status(client, method, path, auth(CHECK_KEY)) < 500
    assert recorder.paths == [path]


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
