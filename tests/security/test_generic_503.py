"""A 503 tells the caller to retry, and nothing about what runs behind revoker.

Threat: Caddy and Traefik pass revoker's forward-auth answer through to the end user, so a
503 from ``/v1/authz`` that says "redis unavailable: ConnectionError" tells anyone on the
internet which store revoker uses and how it fails. Every 503 caused by the store carries
one generic detail and ``Retry-After``; the cause goes to the log (under the request id,
never with a token) and to ``revoker_store_errors_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from yarl import URL

from revoker.web.problem import UNAVAILABLE
from tests.jwt_factory import KeySet
from tests.redis_proc import RedisProcess
from tests.web import conftest as web_fixtures
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, MakeClient, auth, scrape, value
from tests.web.jwt_env import bearer

pytestmark = pytest.mark.security
keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures
make_client = web_fixtures.make_client  # the web suite's app factory
#: Words that name the store or how it failed: none may reach a caller.
INTERNALS = ("redis", "connection", "timeout", "error", "replica", "store did not")


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
async def down(make_client: MakeClient, own_redis: RedisProcess,
               jwt_env: dict[str, str]) -> Any:
    """A started service (fail mode closed) whose Redis has just died."""
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2", **jwt_env)
    assert (await client.get("/readyz")).status == 200
    own_redis.kill()
    return client


def assert_generic(status: int, headers: Any, body: dict[str, Any]) -> None:
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/problem+json"
    assert body["detail"] == UNAVAILABLE
    text = str(body).lower()
    assert not [word for word in INTERNALS if word in text], body


@pytest.mark.parametrize("path", ["/v1/authz", "/v1/authz/api/orders", "/v1/authz/%61pi"],
                         ids=["lane", "lane-tail", "router"])
async def test_fail_closed_authz_says_nothing_of_the_store(
        down: Any, keyset: KeySet, path: str, caplog: pytest.LogCaptureFixture) -> None:
    token = keyset.token()
    _, before = await scrape(down)
    with caplog.at_level(logging.WARNING, logger="revoker.web.middlewares"):
        resp = await down.get(URL(path, encoded=True),
                              headers={**bearer(token), "X-Request-Id": "gw-503"})
        assert_generic(resp.status, resp.headers, await resp.json())
    _, after = await scrape(down)
    assert value(after, "revoker_store_errors_total") > value(before, "revoker_store_errors_total")
    causes = [r for r in caplog.records if r.name == "revoker.web.middlewares"]
    assert len(causes) == 1
    line = causes[0].getMessage()
    assert "503" in line and ("Store" in line or "store" in line)
    assert causes[0].levelno == logging.WARNING
    for segment in token.split("."):
        assert segment not in caplog.text


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/v1/check/abc", {"headers": auth(CHECK_KEY)}),
    ("GET", "/v1/check/%61bc", {"headers": auth(CHECK_KEY)}),
    ("POST", "/v1/check", {"headers": auth(CHECK_KEY), "json": {"claims": {"jti": "a"}}}),
    ("POST", "/v1/revocations", {"headers": auth(ADMIN_KEY),
                                 "json": {"kind": "jti", "value": "x"}}),
    ("GET", "/v1/revocations/jti/x", {"headers": auth(ADMIN_KEY)}),
    ("DELETE", "/v1/revocations/jti/x", {"headers": auth(ADMIN_KEY)}),
])
async def test_every_store_503_is_generic(down: Any, method: str, path: str,
                                          kwargs: dict[str, Any]) -> None:
    resp = await down.request(method, URL(path, encoded=True), **kwargs)
    assert_generic(resp.status, resp.headers, await resp.json())


async def test_introspection_503_is_generic(down: Any, keyset: KeySet) -> None:
    resp = await down.post("/oauth2/introspect", data={"token": keyset.token()},
                           headers={"Authorization": f"Bearer {CHECK_KEY}"})
    assert_generic(resp.status, resp.headers, await resp.json())
