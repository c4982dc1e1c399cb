"""Store behaviour that must hold on Sentinel and Cluster alike.

``test_sentinel.py`` and ``test_cluster.py`` subclass ``HaCases`` and provide the
``ha_store`` fixture (a store on a real, replicated Redis); on Cluster the same cases
prove that nothing assumes every key is on one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from revoker.errors import InvalidInput, NotDurable
from revoker.model import Claims, Lifetimes, Record
from revoker.service import Revoker
from revoker.store.redis import RedisStore

MakeStore = Callable[..., Awaitable[RedisStore]]


@contextlib.asynccontextmanager
async def store_factory(cls: type[RedisStore], url: str,
                        prefix: str) -> AsyncIterator[MakeStore]:
    """``make_ha_store`` for a backend: opened stores, all closed at the end."""
    stores: list[RedisStore] = []

    async def factory(**options: Any) -> RedisStore:
        store = cls(url, prefix=prefix, timeout_s=2.0, events_maxlen=1000, **options)
        await store.open()
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.close()


def record(kind: str, value: str, *, expires_in: int = 600,
           issued_before: int | None = None) -> Record:
    now = int(time.time())
    cutoff = issued_before if issued_before is not None or kind not in ("sub", "client") \
        else now
    return Record(kind=kind, value=value, revoked_at=now, expires_at=now + expires_in,
                  issued_before=cutoff, reason="test", actor="suite")


class HaCases:
    """The shared cases: a test module subclasses this (``class TestX(HaCases)``) and provides
    the ``ha_store`` and ``make_ha_store`` fixtures."""

    async def test_upsert_merges_keeping_later_expiry_and_cutoff(self,
                                                                 ha_store: RedisStore) -> None:
        first = await ha_store.upsert(record("sub", "alice", expires_in=600,
                                             issued_before=int(time.time()) - 100), at=1)
        assert first.created
        later = record("sub", "alice", expires_in=900, issued_before=int(time.time()) - 10)
        merged = await ha_store.upsert(later, at=2)
        assert not merged.created
        assert merged.record.expires_at == later.expires_at
        assert merged.record.issued_before == later.issued_before
        shorter = await ha_store.upsert(record("sub", "alice", expires_in=60, issued_before=1),
                                        at=3)
        assert shorter.record.expires_at == later.expires_at
        assert shorter.record.issued_before == later.issued_before
        server_expiry = await ha_store.client.expiretime(ha_store.key("sub", "alice"))
        assert int(server_expiry) == later.expires_at


    async def test_concurrent_revokes_keep_the_maximum(self, ha_store: RedisStore) -> None:
        expiries = list(range(100, 3100, 100))
        await asyncio.gather(*(ha_store.upsert(record("jti", "race", expires_in=e), at=1)
                               for e in reversed(expiries)))
        stored = await ha_store.get("jti", "race")
        assert stored is not None
        assert stored.expires_at >= int(time.time()) + max(expiries) - 5
        assert int(await ha_store.client.expiretime(ha_store.key("jti", "race"))) == \
            stored.expires_at


    async def test_get_many_across_slots_keeps_order(self, ha_store: RedisStore) -> None:
        present = [record(kind, f"{kind}-{i}") for i in range(40)
                   for kind in ("jti", "sub", "sid", "kid", "client")]
        await ha_store.upsert_many(present, at=1)
        pairs: list[tuple[str, str]] = []
        for i, rec in enumerate(present):
            pairs.append((rec.kind, rec.value))
            if i % 3 == 0:
                pairs.append(("jti", f"missing-{i}"))
        found = await ha_store.get_many(pairs)
        assert len(found) == len(pairs)
        for (kind, value), item in zip(pairs, found, strict=True):
            if value.startswith("missing-"):
                assert item is None
            else:
                assert item is not None and (item.kind, item.value) == (kind, value)


    async def test_scan_lists_every_record_once_across_slots(self, ha_store: RedisStore) -> None:
        jtis = {f"j{i}" for i in range(130)}
        await ha_store.upsert_many([record("jti", v) for v in sorted(jtis)], at=1)
        await ha_store.upsert_many([record("sid", f"s{i}") for i in range(20)], at=1)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            items, cursor = await ha_store.scan(kind="jti", cursor=cursor, limit=17)
            assert len(items) <= 17
            seen += [r.value for r in items]
            pages += 1
            if cursor is None:
                break
            assert pages < 100
        assert sorted(seen) == sorted(jtis)
        everything, _ = await ha_store.scan(kind=None, cursor=None, limit=1000)
        assert len(everything) == 150


    async def test_scan_refuses_a_forged_cursor(self, ha_store: RedisStore) -> None:
        with pytest.raises(InvalidInput):
            await ha_store.scan(kind=None, cursor="x.y", limit=10)


    async def test_events_record_revoke_and_unrevoke_in_order(self, ha_store: RedisStore) -> None:
        await ha_store.upsert(record("jti", "e1"), at=10)
        await ha_store.upsert(record("sid", "e2"), at=11)
        deleted = await ha_store.delete("jti", "e1", at=12)
        assert deleted is not None and deleted.value == "e1"
        events = await ha_store.events(after=None, limit=10)
        assert [(e.type, e.record.value, e.at) for e in events] == [
            ("revoked", "e1", 10), ("revoked", "e2", 11), ("unrevoked", "e1", 12)]
        assert await ha_store.last_event_id() == events[-1].id
        after_first = await ha_store.events(after=events[0].id, limit=10)
        assert [e.id for e in after_first] == [e.id for e in events[1:]]


    async def test_delete_removes_and_reports_absence(self, ha_store: RedisStore) -> None:
        await ha_store.upsert(record("kid", "k1"), at=1)
        assert (await ha_store.delete("kid", "k1", at=2)) is not None
        assert await ha_store.get("kid", "k1") is None
        assert await ha_store.delete("kid", "k1", at=3) is None


    async def test_service_checks_every_kind_across_slots(self, ha_store: RedisStore) -> None:
        service = Revoker(ha_store, lifetimes=Lifetimes(3600, 30))
        now = int(time.time())
        await ha_store.upsert_many([record("sid", "session-9"),
                                    record("client", "app-3", issued_before=now)], at=1)
        results = await service.check_many([
            Claims(jti="x", sub="nobody", sid="session-9", kid="k", client="other", iat=now - 5),
            Claims(jti="y", sub="nobody", sid="s", kid="k", client="app-3", iat=now - 5),
            Claims(jti="z", sub="nobody", sid="s", kid="k", client="app-3", iat=now + 5),
        ])
        assert [r.revoked for r in results] == [True, True, False]
        assert [m.kind for m in results[0].matches] == ["sid"]


    async def test_wait_for_one_replica_acknowledges(self, make_ha_store: MakeStore) -> None:
        store = await make_ha_store(wait_replicas=1)
        outcome = await store.upsert(record("jti", "durable"), at=1)
        assert outcome.created
        assert (await store.delete("jti", "durable", at=2)) is not None


    async def test_wait_for_missing_replicas_is_not_durable(self, make_ha_store: MakeStore) -> None:
        store = await make_ha_store(wait_replicas=3, wait_timeout_s=0.05)
        with pytest.raises(NotDurable):
            await store.upsert(record("jti", "not-durable"), at=1)
        health = await store.health()
        assert any("REDIS_WAIT_REPLICAS=3" in w for w in health.warnings)


    async def test_health_reports_persistence_and_replicas(self, ha_store: RedisStore) -> None:
        health = await ha_store.health()
        assert health.ok
        text = repr(health.detail)
        assert "aof_enabled" in text and "connected_replicas" in text


    async def test_blocking_events_read_wakes_on_a_new_revoke(self, ha_store: RedisStore) -> None:
        """What the SSE stream relies on: a blocked read returns as soon as an event lands."""
        await ha_store.upsert(record("jti", "before"), at=1)
        last = await ha_store.last_event_id()
        assert last is not None
        tail = ha_store.open_tail()
        try:
            waiter = asyncio.create_task(tail.read(after=last, limit=10, block_ms=800))
            await asyncio.sleep(0.1)
            await ha_store.upsert(record("jti", "after"), at=2)
            events = await waiter
            assert [e.record.value for e in events] == ["after"]
        finally:
            await tail.close()
