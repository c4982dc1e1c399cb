"""The fast lane answers every request exactly as the router would.

Threat: the lane (``revoker.web.fastlane``) is a second way into the check and authz
handlers. Any request it answers differently from the application is a hole: it answered
``CONNECT /v1/authz`` with 200 where the router answers 404, and skipped middlewares.

The same raw bytes go over a socket to two servers of the same application (same settings,
same memory-store contents, same clock): one behind the lane as ``revoker serve`` runs, one
as a plain ``aiohttp.web.AppRunner``. Status, headers (all but Date, Server and
X-Request-Id) and body (request ids normalised) must be identical for every method, path
shape and credential below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import FakeClock
from tests.jwt_factory import KeySet, claims, pooled_rsa, sign
from tests.web import conftest as web_fixtures
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, MakeClient, auth

pytestmark = pytest.mark.security
keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures
make_client = web_fixtures.make_client  # the web suite's app factory

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
           "FROBNICATE")
PATHS = (
    "/v1/check/abc", "/v1/check/%61bc", "/v1/check/", "/v1/check/a/b", "/v1/check/abc?x=1",
    "/v1/check/live", "/v1/check/..", "/v1/check/batch", "/v1/check/a%2fb",
    "/v1/authz", "/v1/authz/", "/v1/authz/x/y?q=1", "/v1/authz/../check/abc", "//v1/authz",
    "/v1/authz?%zz", "/v1/authz%2fx", "/v1/authz//x", "/v1/authz#frag", "/v1/authzz",
    "http://revoker.test/v1/check/abc", "http://revoker.test/v1/authz/x", "*",
)
#: Headers whose values differ between any two answers, whoever gives them.
VOLATILE = frozenset({"date", "server", "x-request-id"})
REVOKED_JTI = "revoked-by-admin"

Answer = tuple[int, tuple[tuple[str, str], ...], bytes]


async def raw_answer(host: str, port: int, request: bytes) -> Answer:
    """One request on its own connection, exactly as written; the answer, normalised."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    interim = []
    while head.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue) precedes it
        interim.append(("interim", head.decode("latin-1")))
        head, _, body = body.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(":", 1)) for line in header_lines]
    kept = (*interim, *sorted((name.strip().lower(), value.strip()) for name, value in headers
                              if name.strip().lower() not in VOLATILE))
    for name, value in headers:
        if name.strip().lower() == "x-request-id" and value.strip():
            body = body.replace(value.strip().encode(), b"<request-id>")
    return int(status_line.split()[1]), kept, body


def request_bytes(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: revoker.test", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def credentials(keys: KeySet) -> dict[str, dict[str, str]]:
    rsa_kid, _ = keys.by_alg("RS256")
    tokens = {
        "valid": keys.token(jti="live"),
        "revoked": keys.token(jti=REVOKED_JTI),
        # the trusted kid, another key's signature
        "forged": sign(pooled_rsa(1), "RS256", claims(jti="live"), kid=rsa_kid),
    }
    gateway = {"X-Revoker-Key": CHECK_KEY}
    return {
        "no-key": {},
        "bad-key": {"X-Revoker-Key": "rvk_not_a_configured_key"},
        "check-key": gateway,
        "check-bearer": {"Authorization": f"Bearer {CHECK_KEY}"},
        **{f"{name}-jwt": {**gateway, "Authorization": f"Bearer {token}"}
           for name, token in tokens.items()},
        "jwt-without-key": {"Authorization": f"Bearer {tokens['valid']}"},
        "expect-continue": {**gateway, "Authorization": f"Bearer {tokens['valid']}",
                            "Expect": "100-continue"},
        "expect-unknown": {**gateway, "Expect": "something-else"},
    }


class Counter:
    """Counts the requests the lane leaves to the application."""

    def __init__(self, client: Any) -> None:
        lane = client.server.runner.server.request_handler
        self.application: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] = (
            lane.application)
        lane.application = self
        self.count = 0

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.count += 1
        return await self.application(request)


@pytest.fixture(params=["key", "none"], ids=["check-auth-key", "check-auth-none"])
async def servers(request: pytest.FixtureRequest, make_client: MakeClient,
                  jwt_env: dict[str, str]) -> tuple[Any, Any]:
    """(behind the lane, through the router): same settings, clock and records."""
    clock = FakeClock(now=time.time())  # one clock: both stores hold identical records
    env = {**jwt_env, "REVOKER_AUTHZ_CLAIM_HEADERS": "sub=X-Auth-User,scope=X-Auth-Scope",
           "REVOKER_CHECK_AUTH": request.param}
    pair = (await make_client(clock=clock, **env),
            await make_client(clock=clock, lane=False, **env))
    for client in pair:
        for jti in ("abc", REVOKED_JTI):
            resp = await client.post("/v1/revocations", headers=auth(ADMIN_KEY),
                                     json={"kind": "jti", "value": jti, "ttl": 600,
                                           "reason": "differential"})
            assert resp.status == 201
    return pair


@pytest.mark.parametrize("path", PATHS)
async def test_lane_and_router_answer_alike(servers: tuple[Any, Any], keyset: KeySet,
                                            path: str) -> None:
    laned, routed = servers
    counter = Counter(laned)
    sent = 0
    differences = []
    for method in METHODS:
        for name, headers in credentials(keyset).items():
            raw = request_bytes(method, path, headers)
            by_lane = await raw_answer(laned.host, laned.port, raw)
            by_router = await raw_answer(routed.host, routed.port, raw)
            sent += 1
            if by_lane != by_router:
                differences.append(f"{method} {path} [{name}]:\n  lane   {by_lane}\n"
                                   f"  router {by_router}")
    assert not differences, "\n".join(differences)
    if path in ("/v1/check/abc", "/v1/check/live", "/v1/authz", "/v1/authz/x/y?q=1"):
        assert counter.count < sent, "the lane served none of these requests"
