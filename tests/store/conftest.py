"""The store fixtures: to add a backend to the behaviour suite, add a fixture param here.

``store`` is an opened store of each backend on a real server (memory, standalone Redis,
Redis behind Sentinel, a 3-primary Redis Cluster); ``make_store`` opens more of the same
backend with other options (``wait_replicas``...). Sentinel and Cluster groups start
once per session and are marked slow (several processes and a topology to settle).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from revoker.model import Record
from revoker.store.base import Store
from revoker.store.cluster import ClusterStore
from revoker.store.memory import MemoryStore
from revoker.store.redis import RedisStore
from revoker.store.sentinel import SentinelStore
from tests.redis_cluster import RedisClusterGroup
from tests.redis_proc import RedisProcess
from tests.redis_sentinel import SentinelGroup

MakeStore = Callable[..., Awaitable[Store]]

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("sentinel", marks=[pytest.mark.redis, pytest.mark.slow]),
    pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.slow]),
]
#: Backends with replicas, where WAIT and persistence reports mean something.
REPLICATED = [p for p in BACKENDS if p.values[0] in ("sentinel", "cluster")]


@pytest.fixture(scope="session")
def sentinels() -> Iterator[SentinelGroup]:
    group = SentinelGroup().start(wait_peers=False)
    yield group
    group.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup().start()
    yield group
    group.stop()


def _factory(request: pytest.FixtureRequest, backend: str,
             prefix: str) -> Callable[..., Store]:
    if backend == "memory":
        return lambda **options: MemoryStore(prefix=prefix, timeout_s=2.0, events_maxlen=1000,
                                             clock=time.time, **options)
    cls: type[RedisStore]
    if backend == "redis":
        cls, url = RedisStore, request.getfixturevalue("redis_server").url
    elif backend == "sentinel":
        cls, url = SentinelStore, request.getfixturevalue("sentinels").url
    else:
        cls, url = ClusterStore, request.getfixturevalue("cluster").url
    return lambda **options: cls(url, prefix=prefix, timeout_s=2.0, events_maxlen=1000,
                                 **options)


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest,
                     prefix: str) -> AsyncIterator[MakeStore]:
    """Opened stores of one backend, sharing one key prefix; all closed at the end."""
    build = _factory(request, request.param, prefix)
    made: list[Store] = []

    async def factory(**options: Any) -> Store:
        store = build(**options)
        await store.open()
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
async def raw(redis_server: RedisProcess) -> AsyncIterator[Any]:
    """A plain Redis client, for the few tests that check the documented layout or damage
    the events stream behind a store's back."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_store(redis_server: RedisProcess, prefix: str) -> AsyncIterator[RedisStore]:
    """One opened store on the suite's standalone Redis, for tests of Redis alone."""
    backend = RedisStore(redis_server.url, prefix=prefix, timeout_s=1.0, events_maxlen=1000)
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


def record(kind: str, value: str, *, expires_in: int = 600, issued_before: int | None = None,
           actor: str | None = "suite", reason: str | None = "test") -> Record:
    """A record as the service would build it now."""
    now = int(time.time())
    cutoff = issued_before if issued_before is not None or kind not in ("sub", "client") \
        else now
    return Record(kind=kind, value=value, revoked_at=now, expires_at=now + expires_in,
                  issued_before=cutoff, reason=reason, actor=actor)
