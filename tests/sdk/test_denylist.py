"""``GET /v1/denylist`` on a real ``revoker serve`` with a real redis-server: every active
record as NDJSON, paged, with the position to follow events from."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from revoker.model import Event
from revoker.sdk import RevokerClient
from revoker.web.denylist import PAGE_SIZE
from tests.redis_proc import RedisProcess
from tests.sdk.conftest import ADMIN, CHECKER, KEYS
from tests.serve_proc import ServeProcess

pytestmark = pytest.mark.redis


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_every_active_record_across_pages_with_the_position(
        service: ServeProcess) -> None:
    count = PAGE_SIZE * 2 + 17  # three pages
    async with RevokerClient(service.url, ADMIN) as rc:
        await rc.revoke_batch([{"kind": "jti", "value": f"j-{i}"} for i in range(count)])
        await rc.revoke("sub", "alice", reason="password changed")
        await rc.revoke("jti", "gone", expires_at=int(time.time()) - 3600)  # stores nothing
        await rc.revoke("sid", "ended")
        await rc.unrevoke("sid", "ended")
        events = [e async for e in _all_events(rc)]
    async with aiohttp.ClientSession() as http, \
            http.get(service.url + "/v1/denylist", headers=auth(CHECKER)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        assert resp.headers["X-Revoker-Position"] == events[-1].id
        assert resp.headers["X-Revoker-Oldest"] == events[0].id
        assert resp.headers["Cache-Control"] == "no-store"
        lines = (await resp.read()).decode().splitlines()
    records = [json.loads(line) for line in lines]
    by_key = {(r["kind"], r["value"]): r for r in records}
    assert set(by_key) == {("jti", f"j-{i}") for i in range(count)} | {("sub", "alice")}
    assert by_key[("sub", "alice")]["reason"] == "password changed"
    assert by_key[("sub", "alice")]["issued_before"] is not None


async def _all_events(rc: RevokerClient) -> AsyncIterator[Event]:
    after = None
    while True:
        page = await rc.events(after=after, limit=1000)
        for event in page.events:
            yield event
        if not page.events:
            return
        after = page.next


async def test_head_gives_the_position_alone_and_an_empty_store_starts_at_zero(
        service: ServeProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.head(service.url + "/v1/denylist", headers=auth(CHECKER)) as resp:
            assert resp.status == 200
            assert resp.headers["X-Revoker-Position"] == "0-0"
            assert "X-Revoker-Oldest" not in resp.headers
        async with http.get(service.url + "/v1/denylist", headers=auth(CHECKER)) as resp:
            assert resp.status == 200 and await resp.read() == b""


async def test_needs_a_check_key_and_refuses_unknown_parameters(
        service: ServeProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(service.url + "/v1/denylist") as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
        async with http.get(service.url + "/v1/denylist", headers=auth("rvk_nope")) as resp:
            assert resp.status == 401
        async with http.get(service.url + "/v1/denylist?kind=jti",
                            headers=auth(CHECKER)) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"


async def test_store_down_is_a_503_before_any_line(prefix: str) -> None:
    redis = RedisProcess().start()
    server = ServeProcess({"REVOKER_STORE_URL": redis.url, "REVOKER_API_KEYS": KEYS,
                           "REVOKER_KEY_PREFIX": prefix,
                           "REVOKER_ACCESS_LOG": "false"}).start()
    try:
        redis.kill()
        async with aiohttp.ClientSession() as http, \
                http.get(server.url + "/v1/denylist", headers=auth(CHECKER)) as resp:
            assert resp.status == 503
            assert resp.content_type == "application/problem+json"
            assert "Retry-After" in resp.headers
    finally:
        server.stop()
        redis.stop()
