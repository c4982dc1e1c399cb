"""The store fixture: to add a backend to the behaviour suite, add a param here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from revoker.store.base import Store
from revoker.store.memory import MemoryStore
from revoker.store.redis import RedisStore


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.memory),
                        pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore(prefix=prefix, timeout_s=1.0, events_maxlen=1000, clock=time.time)
    else:
        server = request.getfixturevalue("redis_server")
        backend = RedisStore(server.url, prefix=prefix, timeout_s=1.0, events_maxlen=1000)
    await backend.open()
    yield backend
    await backend.close()
