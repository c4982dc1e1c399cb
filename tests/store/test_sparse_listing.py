"""A filtered listing over a large keyspace: SCAN examines keys of every prefix, so a page
keeps scanning (within its time budget) until it has matches, instead of answering an empty
page with a cursor after a fixed few thousand keys."""

from __future__ import annotations

import time

import redis

from revoker.model import Lifetimes, Record, RevokeRequest, build_record
from revoker.store.redis import RedisStore
from tests.redis_proc import RedisProcess

FOREIGN = 30_000


async def test_a_sparse_filter_finds_its_records_on_the_first_page(
        redis_server: RedisProcess, prefix: str) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    pipe = raw.pipeline(transaction=False)
    for i in range(FOREIGN):
        pipe.set(f"{prefix}other:jti:noise-{i}", b"{}", ex=600)
    pipe.execute()
    store = RedisStore(redis_server.url, prefix=f"{prefix}mine:", timeout_s=0.25,
                       events_maxlen=100)
    await store.open()
    try:
        built = [build_record(RevokeRequest("sub", f"alice-{i}"), now=time.time(),
                              lifetimes=Lifetimes(3600, 30), actor="suite") for i in range(3)]
        records = [r for r in built if isinstance(r, Record)]
        await store.upsert_many(records, at=int(time.time()))
        items, _ = await store.scan(kind="sub", prefix="alice", cursor=None, limit=10)
        assert sorted(r.value for r in items) == ["alice-0", "alice-1", "alice-2"]
        everything, _ = await store.scan(kind=None, cursor=None, limit=10)
        assert len(everything) == 3
    finally:
        await store.close()
        keys = list(raw.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 5000):
            raw.delete(*keys[start:start + 5000])
        raw.close()
