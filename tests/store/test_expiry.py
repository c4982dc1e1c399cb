"""Records disappear on their own: a fake clock for memory://, a short real expiry for Redis."""

from __future__ import annotations

import asyncio
import time

from revoker.model import Lifetimes, RevokeRequest
from revoker.service import Revoker
from revoker.store.base import Store
from revoker.store.memory import MemoryStore
from tests.conftest import FakeClock


async def test_memory_record_expires_on_the_clock(clock: FakeClock, prefix: str) -> None:
    store = MemoryStore(prefix=prefix, timeout_s=1, events_maxlen=10, clock=clock)
    svc = Revoker(store, lifetimes=Lifetimes(3600, 30), clock=clock)
    await svc.revoke(RevokeRequest("jti", "j", token_exp=int(clock.now) + 10), actor=None)
    clock.advance(39)
    assert await store.get("jti", "j") is not None
    clock.advance(1)
    assert await store.get("jti", "j") is None
    items, cursor = await store.scan(kind=None, cursor=None, limit=10)
    assert items == [] and cursor is None


async def test_record_is_gone_once_expires_at_passes(store: Store) -> None:
    """On every backend (real time: the record is made to expire within a second)."""
    svc = Revoker(store, lifetimes=Lifetimes(3600, 30))
    now = int(time.time())
    record = (await svc.revoke(RevokeRequest("jti", "short", token_exp=now - 29),
                               actor=None)).record
    assert record is not None and record.expires_at == now + 1
    deadline = time.monotonic() + 5
    while await store.get("jti", "short") is not None:
        assert time.monotonic() < deadline, "the store kept the record past expires_at"
        await asyncio.sleep(0.05)
    assert time.time() >= now + 1
