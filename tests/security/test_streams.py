"""Long-lived event streams must never starve checks, authz and revokes.

The attack: a holder of a mere ``check`` key opens hundreds of ``GET /v1/events/stream``
connections. When each stream held its own blocking Redis read, they took every Redis
connection a worker could get (here: Redis ``maxclients``, as managed Redis sets it), and
then every check, authz and revoke failed - and with ``REVOKER_FAIL_MODE=open`` a revoked
token was accepted while Redis itself was healthy. Streams now share one tail per worker,
the hot path has its own pool, and the number of streams per worker is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import jwt
import pytest

from revoker import apikeys
from tests.jwt_factory import HS_SECRET, claims
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess

pytestmark = [pytest.mark.security, pytest.mark.redis, pytest.mark.slow]

ADMIN = "rvk_streams_admin_key_000000000000000"
CHECKER = "rvk_streams_check_key_000000000000000"
KEYS = ",".join([apikeys.config_line("ops", ["admin"], ADMIN),
                 apikeys.config_line("gw", ["check"], CHECKER)])
STREAMS = 300
#: Redis accepts this many clients in all: far fewer than the streams, more than both
#: workers' own pools need.
MAX_CLIENTS = 200


@pytest.fixture(scope="module")
def small_redis() -> Iterator[RedisProcess]:
    server = RedisProcess(["--maxclients", str(MAX_CLIENTS)]).start()
    yield server
    server.stop()


def serve(redis: RedisProcess, **env: str) -> ServeProcess:
    return ServeProcess({"REVOKER_STORE_URL": redis.url, "REVOKER_API_KEYS": KEYS,
                         "REVOKER_KEY_PREFIX": f"s{uuid.uuid4().hex[:10]}:",
                         "REVOKER_ACCESS_LOG": "false", "REVOKER_WORKERS": "2",
                         "REVOKER_REDIS_POOL_SIZE": "16",
                         "REVOKER_JWT_ALGORITHMS": "HS256", "REVOKER_JWT_SECRET": HS_SECRET,
                         **env})


@contextlib.asynccontextmanager
async def running(server: ServeProcess) -> AsyncIterator[ServeProcess]:
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


async def open_stream(client: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """A stream that the server has started serving (its ``retry:`` line arrived)."""
    resp = await client.get(url + "/v1/events/stream",
                            headers={"Authorization": f"Bearer {CHECKER}"},
                            timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    if resp.status == 200:
        async with asyncio.timeout(10):
            assert (await resp.content.readline()).startswith(b"retry:")
    return resp


async def open_streams(client: aiohttp.ClientSession, url: str,
                       count: int) -> list[aiohttp.ClientResponse]:
    opened: list[aiohttp.ClientResponse] = []
    for start in range(0, count, 50):
        opened += await asyncio.gather(*(open_stream(client, url)
                                         for _ in range(start, min(count, start + 50))))
    return opened


async def revoke(client: aiohttp.ClientSession, url: str, value: str) -> int:
    async with client.post(url + "/v1/revocations",
                           json={"kind": "jti", "value": value, "ttl": 600},
                           headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
        await resp.read()
        return resp.status


async def check(client: aiohttp.ClientSession, url: str, value: str) -> tuple[int, Any]:
    async with client.get(url + f"/v1/check/{value}",
                          headers={"Authorization": f"Bearer {CHECKER}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def authz(client: aiohttp.ClientSession, url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "X-Revoker-Key": CHECKER}
    async with client.get(url + "/v1/authz", headers=headers) as resp:
        await resp.read()
        return resp.status


async def hot_path_survives(client: aiohttp.ClientSession, url: str) -> None:
    """With every stream open: each revoke is 2xx, each check and authz of a fresh token
    200, and a revoked token refused."""
    values = [f"hot-{uuid.uuid4().hex}" for _ in range(40)]
    revokes = await asyncio.gather(*(revoke(client, url, v) for v in values))
    assert all(200 <= status < 300 for status in revokes), revokes
    checks = await asyncio.gather(*(check(client, url, v) for v in values))
    assert [status for status, _ in checks] == [200] * len(values), checks
    assert all(body["revoked"] for _, body in checks), checks
    fresh = [jwt.encode(claims(), HS_SECRET, algorithm="HS256") for _ in range(40)]
    answers = await asyncio.gather(*(authz(client, url, token) for token in fresh))
    assert answers == [200] * len(fresh), answers
    stolen = claims()
    assert await revoke(client, url, stolen["jti"]) == 201
    token = jwt.encode(stolen, HS_SECRET, algorithm="HS256")
    refused = await asyncio.gather(*(authz(client, url, token) for _ in range(20)))
    assert refused == [401] * 20, "a revoked token was accepted"


@pytest.mark.parametrize("mode", [{"REVOKER_FAIL_MODE": "closed"},
                                  {"REVOKER_FAIL_MODE": "open"},
                                  {"REVOKER_CHECK_MODE": "mirror"}],
                         ids=["strict-closed", "strict-open", "mirror"])
async def test_300_streams_do_not_starve_the_hot_path(small_redis: RedisProcess,
                                                      mode: dict[str, str]) -> None:
    server = serve(small_redis, REVOKER_MAX_STREAMS="1000", **mode)
    async with running(server), session() as client:
        streams = await open_streams(client, server.url, STREAMS)
        try:
            assert [r.status for r in streams] == [200] * STREAMS
            await hot_path_survives(client, server.url)
            value = f"seen-{uuid.uuid4().hex}"
            assert await revoke(client, server.url, value) == 201
            for resp in streams[::60]:  # the fan-out still delivers to every subscriber
                await receives(resp, value)
        finally:
            for resp in streams:
                resp.close()


async def receives(resp: aiohttp.ClientResponse, value: str) -> None:
    """The stream carries the event of ``value`` (after those of earlier revokes)."""
    async with asyncio.timeout(10):
        while True:
            line = (await resp.content.readline()).decode()
            assert line, "the stream ended"
            if line.startswith("data:") and value in line:
                return


async def test_streams_beyond_the_bound_are_refused_with_retry_after(
        small_redis: RedisProcess) -> None:
    server = serve(small_redis, REVOKER_MAX_STREAMS="3")
    async with running(server), session() as client:
        streams = await open_streams(client, server.url, 12)
        try:
            accepted = [r for r in streams if r.status == 200]
            refused = [r for r in streams if r.status != 200]
            assert len(accepted) <= 6, "more streams than 2 workers x REVOKER_MAX_STREAMS"
            assert refused, "no stream was refused"
            for resp in refused:
                assert resp.status == 503
                assert resp.headers["Retry-After"]
                assert resp.content_type == "application/problem+json"
            await hot_path_survives(client, server.url)
            async with client.get(server.url + "/metrics") as resp:
                text = await resp.text()
            assert _metric(text, "revoker_streams_refused_total") == len(refused)
            assert _metric(text, "revoker_streams_open") == len(accepted)
        finally:
            for resp in streams:
                resp.close()


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"(?m)^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text))
