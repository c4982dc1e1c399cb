"""The local denylist mirror against a real Redis: load, propagation, expiry, gaps, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from revoker.config import Settings
from revoker.errors import ConfigError, InvalidInput, StoreUnavailable
from revoker.mirror import Coalescer, Gap, Mirror
from revoker.model import Claims, Lifetimes, Record, RevokeRequest
from revoker.service import Revoked, Revoker
from revoker.store.base import Upserted
from revoker.store.redis import RedisStore
from revoker.web.app import create_app
from tests.conftest import FakeClock
from tests.lane_server import LaneTestServer
from tests.redis_proc import RedisProcess
from tests.web.conftest import CHECK_KEY, KEYS_ENV, auth

pytestmark = pytest.mark.redis
LIFETIMES = Lifetimes(3600, 30)


async def eventually(condition: Callable[[], Awaitable[bool] | bool], *,
                     timeout_s: float = 5.0) -> None:
    """Poll with a deadline: the mirror is asynchronous by design."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def store(redis_server: RedisProcess, prefix: str) -> AsyncIterator[RedisStore]:
    backend = RedisStore(redis_server.url, prefix=prefix, timeout_s=1.0, events_maxlen=1000)
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture
async def mirrors(store: RedisStore) -> AsyncIterator[Callable[..., Mirror]]:
    made: list[Mirror] = []

    def factory(**options: Any) -> Mirror:
        mirror = Mirror(store, **{"block_ms": 200, **options})
        made.append(mirror)
        return mirror

    yield factory
    for mirror in made:
        await mirror.stop()


def writer(store: RedisStore, clock: Callable[[], float] = time.time) -> Revoker:
    return Revoker(store, lifetimes=LIFETIMES, clock=clock)


async def revoke_jti(svc: Revoker, value: str, **fields: Any) -> None:
    await svc.revoke(RevokeRequest("jti", value, **fields), actor="test")


async def test_snapshot_loads_every_record(store: RedisStore,
                                           mirrors: Callable[..., Mirror]) -> None:
    svc = writer(store)
    await svc.revoke_many([RevokeRequest("jti", f"j{i}") for i in range(250)], actor="t")
    await svc.revoke(RevokeRequest("sub", "alice", reason="left"), actor="t")
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    assert len(mirror.table.entries) == 251
    found = await mirror.lookup([("jti", "j7"), ("jti", "nope"), ("sub", "alice")])
    assert found[0] is not None and found[0].value == "j7"
    assert found[1] is None
    assert found[2] is not None and found[2].reason == "left"
    ok, name, detail = await mirror.readiness()
    assert ok and name == "mirror" and detail["entries"] == 251


async def test_revoke_and_unrevoke_propagate(store: RedisStore,
                                             mirrors: Callable[..., Mirror]) -> None:
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    checker = Revoker(store, lifetimes=LIFETIMES, lookup=mirror.lookup)
    svc = writer(store)
    await revoke_jti(svc, "stolen")

    async def revoked() -> bool:
        return (await checker.check(Claims(jti="stolen"))).revoked

    await eventually(revoked)
    assert await svc.unrevoke("jti", "stolen") is not None
    await eventually(lambda: "jti:stolen" not in mirror.table.entries)
    assert not (await checker.check(Claims(jti="stolen"))).revoked


async def test_cutoff_kinds_keep_their_rule(store: RedisStore,
                                            mirrors: Callable[..., Mirror]) -> None:
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    checker = Revoker(store, lifetimes=LIFETIMES, lookup=mirror.lookup)
    now = int(time.time())
    await writer(store).revoke(RevokeRequest("sub", "bob", issued_before=now - 10), actor="t")
    await eventually(lambda: "sub:bob" in mirror.table.entries)
    assert (await checker.check(Claims(sub="bob", iat=now - 20))).revoked
    assert not (await checker.check(Claims(sub="bob", iat=now - 5))).revoked


async def test_expiry_is_applied_locally_and_swept(store: RedisStore,
                                                   mirrors: Callable[..., Mirror]) -> None:
    clock = FakeClock(time.time())
    svc = writer(store, clock)
    await revoke_jti(svc, "short", ttl_s=10)
    mirror = mirrors(clock=clock)
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    assert (await mirror.lookup([("jti", "short")]))[0] is not None
    clock.advance(42)  # ttl 10 + leeway 30 (+1 rounding): Redis, on real time, keeps it
    assert (await mirror.lookup([("jti", "short")]))[0] is None
    assert await store.get("jti", "short") is not None
    clock.advance(120)
    assert mirror.table.sweep(clock()) == 1
    assert "jti:short" not in mirror.table.entries


async def test_trimmed_stream_triggers_a_resync(store: RedisStore,
                                                mirrors: Callable[..., Mirror]) -> None:
    svc = writer(store)
    await revoke_jti(svc, "before")
    mirror = mirrors()
    await mirror.resync()
    await revoke_jti(svc, "lost-1")
    await revoke_jti(svc, "lost-2")
    await store.client.xtrim(store.events_key, maxlen=0)
    await revoke_jti(svc, "after")
    with pytest.raises(Gap):
        mirror._check_gap(await store.client.xinfo_stream(store.events_key))
    await mirror.start()  # tails from the stale position, finds the gap, reloads
    await eventually(lambda: mirror.resyncs == 2 and mirror.in_sync)
    found = await mirror.lookup([("jti", v) for v in ("before", "lost-1", "lost-2", "after")])
    assert all(record is not None for record in found)


async def test_recreated_stream_triggers_a_resync(store: RedisStore,
                                                  mirrors: Callable[..., Mirror]) -> None:
    svc = writer(store)
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    await revoke_jti(svc, "one")
    await revoke_jti(svc, "two")
    await eventually(lambda: "jti:two" in mirror.table.entries)
    await mirror.stop()
    await store.client.delete(store.events_key, store.key("jti", "one"))
    await revoke_jti(svc, "three")
    restarted = mirrors()
    restarted.table, restarted.position = mirror.table, mirror.position
    restarted.synced = True
    await restarted.start()
    await eventually(lambda: restarted.resyncs == 1 and "jti:one" not in restarted.table.entries)
    assert "jti:three" in restarted.table.entries


async def test_out_of_sync_mirror_reads_redis_instead(store: RedisStore,
                                                      mirrors: Callable[..., Mirror]) -> None:
    """Before the first load (and whenever sync is lost) checks are strict, not stale."""
    await revoke_jti(writer(store), "known")
    mirror = mirrors()
    assert not mirror.in_sync
    assert (await mirror.lookup([("jti", "known")]))[0] is not None
    ok, _, detail = await mirror.readiness()
    assert not ok and detail["in_sync"] is False


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:1/main", "redis+cluster://127.0.0.1:1"])
def test_mirror_refuses_stores_it_cannot_follow(url: str) -> None:
    settings = Settings.from_env({"REVOKER_STORE_URL": url, "REVOKER_CHECK_MODE": "mirror"})
    with pytest.raises(ConfigError, match="REVOKER_CHECK_MODE"):
        create_app(settings)


async def mirrored_app(url: str, prefix: str, **env: str) -> TestClient[Any, Any]:
    settings = Settings.from_env({"REVOKER_STORE_URL": url, "REVOKER_API_KEYS": KEYS_ENV,
                                  "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false",
                                  "REVOKER_CHECK_MODE": "mirror", **env})
    client = TestClient(LaneTestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.mark.slow
async def test_redis_down_fails_readiness_and_applies_fail_mode(prefix: str) -> None:
    server = RedisProcess().start()
    clients: list[TestClient[Any, Any]] = []
    try:
        closed = await mirrored_app(server.url, prefix)
        clients.append(closed)
        opened = await mirrored_app(server.url, prefix, REVOKER_FAIL_MODE="open")
        clients.append(opened)
        for client in (closed, opened):
            await eventually(_ready(client, 200))
        response = await closed.post("/v1/revocations", json={"kind": "jti", "value": "x1"},
                                     headers=auth())
        assert response.status == 201
        await eventually(lambda: _revoked(closed, "x1"))
        server.kill()
        for client in (closed, opened):
            await eventually(_ready(client, 503))
        response = await closed.get("/v1/check/x1", headers=auth(CHECK_KEY))
        assert response.status == 503
        response = await opened.get("/v1/check/x1", headers=auth(CHECK_KEY))
        assert response.status == 200
        assert response.headers["X-Revoker-Degraded"] == "fail-open"
        server.start()  # a fresh, empty Redis: the stream is gone, so the mirror reloads
        await eventually(_ready(closed, 200), timeout_s=10)
        assert not await _revoked(closed, "x1")
    finally:
        for client in clients:
            await client.close()
        server.stop()


def _ready(client: Any, status: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return bool((await client.get("/readyz")).status == status)
    return probe


async def _revoked(client: Any, jti: str) -> bool:
    response = await client.get(f"/v1/check/{jti}", headers=auth(CHECK_KEY))
    return bool(response.status == 200 and (await response.json())["revoked"])



async def test_concurrent_strict_lookups_share_one_read(store: RedisStore) -> None:
    """Strict mode batches reads, it does not cache them: each caller gets its own answer."""
    await revoke_jti(writer(store), "bad")
    calls: list[int] = []

    async def counting(pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        calls.append(len(pairs))
        return await store.get_many(pairs)

    coalescer = Coalescer(counting)
    names = [f"ok{i}" for i in range(20)] + ["bad"]
    found = await asyncio.gather(*[coalescer.lookup([("jti", n)]) for n in names])
    assert calls == [21]
    assert [r[0] is not None for r in found] == [False] * 20 + [True]
    await revoke_jti(writer(store), "ok3")
    assert (await coalescer.lookup([("jti", "ok3")]))[0] is not None, "nothing was cached"


async def test_a_failed_batched_read_fails_every_caller(store: RedisStore) -> None:
    async def broken(pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        raise StoreUnavailable("down")

    coalescer = Coalescer(broken)
    outcomes = await asyncio.gather(*[coalescer.lookup([("jti", str(i))]) for i in range(5)],
                                    return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)


async def test_concurrent_revokes_are_written_together(store: RedisStore) -> None:
    svc = writer(store)
    svc.batch_revokes = True
    batches: list[int] = []
    upsert = store.upsert_many

    async def counting(records: Sequence[Record], *, at: int) -> list[Upserted]:
        batches.append(len(records))
        return await upsert(records, at=at)

    store.upsert_many = counting  # type: ignore[method-assign]
    future = int(time.time()) + 3600
    requests = [RevokeRequest("jti", f"b{i}") for i in range(10)]
    requests.append(RevokeRequest("sub", "eve", issued_before=future))
    outcomes = await asyncio.gather(*[svc.revoke(r, actor="t") for r in requests],
                                    return_exceptions=True)
    assert batches == [10]
    assert all(isinstance(o, Revoked) and o.created for o in outcomes[:10])
    assert isinstance(outcomes[10], InvalidInput), "a bad request fails alone"
    assert all(await store.get_many([("jti", f"b{i}") for i in range(10)]))
