"""With Redis gone: readiness fails, checks follow the fail mode, revokes are never faked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from revoker.web.problem import UNAVAILABLE
from tests.redis_proc import RedisProcess
from tests.web.conftest import auth


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


async def test_store_down_closed(make_client: Any, own_redis: RedisProcess) -> None:
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2")
    assert (await client.post("/v1/revocations", json={"kind": "jti", "value": "kept"},
                              headers=auth())).status == 201
    own_redis.kill()
    resp = await client.get("/readyz")
    assert resp.status == 503 and resp.content_type == "application/problem+json"
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/v1/check/kept", headers=auth())
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert (await resp.json())["detail"] == UNAVAILABLE  # the cause is logged, not told
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "lost"},
                             headers=auth())
    assert resp.status == 503 and resp.content_type == "application/problem+json"
    assert (await resp.json())["detail"] == UNAVAILABLE
    own_redis.start()
    resp = await client.get("/readyz")
    assert resp.status == 200
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "after"},
                             headers=auth())
    assert resp.status == 201


async def test_store_down_open_accepts_and_says_so(make_client: Any,
                                                   own_redis: RedisProcess) -> None:
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2",
                               REVOKER_FAIL_MODE="open")
    own_redis.kill()
    resp = await client.get("/v1/check/x", headers=auth())
    assert resp.status == 200 and resp.headers["X-Revoker-Degraded"] == "fail-open"
    assert (await resp.json())["revoked"] is False
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "y"},
                             headers=auth())
    assert resp.status == 503
    metrics = await (await client.get("/metrics")).text()
    assert "revoker_fail_open_total" in metrics
