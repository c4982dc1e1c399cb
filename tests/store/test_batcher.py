"""Per-turn batching of lookups and revokes, on every backend: one store call per turn,
each caller answered with its own share, nothing cached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from revoker.errors import InvalidInput, StoreUnavailable
from revoker.model import Lifetimes, Record, RevokeRequest
from revoker.service import Revoked, Revoker
from revoker.store.base import Store, Upserted
from revoker.store.batcher import BatchingStore, Coalescer
from revoker.store.layer import StoreLayer

LIFETIMES = Lifetimes(3600, 30)


class Counting(StoreLayer):
    """Records the size of every call that reaches the store."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.lookups: list[int] = []
        self.writes: list[int] = []

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        self.lookups.append(len(pairs))
        return await self.inner.get_many(pairs)

    async def upsert_many(self, records: Sequence[Record], *, at: int) -> list[Upserted]:
        self.writes.append(len(records))
        return await self.inner.upsert_many(records, at=at)


async def test_concurrent_lookups_share_one_read(store: Store) -> None:
    counted = Counting(store)
    batched = BatchingStore(counted)
    svc = Revoker(batched, lifetimes=LIFETIMES)
    await svc.revoke(RevokeRequest("jti", "bad"), actor="t")
    names = [f"ok{i}" for i in range(20)] + ["bad"]
    found = await asyncio.gather(*[batched.get_many([("jti", n)]) for n in names])
    assert counted.lookups == [21]
    assert [r[0] is not None for r in found] == [False] * 20 + [True]
    await svc.revoke(RevokeRequest("jti", "ok3"), actor="t")
    assert (await batched.get_many([("jti", "ok3")]))[0] is not None, "nothing was cached"


async def test_a_name_asked_by_several_callers_is_read_once(store: Store) -> None:
    counted = Counting(store)
    batched = BatchingStore(counted)
    svc = Revoker(batched, lifetimes=LIFETIMES)
    await svc.revoke(RevokeRequest("kid", "k1"), actor="t")
    # Ten tokens of one signing key and one user, each with its own jti: one turn.
    asked = [[("jti", f"t{i}"), ("sub", "alice"), ("kid", "k1")] for i in range(10)]
    found = await asyncio.gather(*[batched.get_many(pairs) for pairs in asked])
    assert counted.lookups == [12], "ten jtis, one sub, one kid"
    for answer in found:
        assert [r is not None for r in answer] == [False, False, True]
        assert answer[2] is not None and answer[2].kind == "kid" and answer[2].value == "k1"
    await svc.revoke(RevokeRequest("sub", "alice"), actor="t")
    again = await asyncio.gather(*[batched.get_many(pairs) for pairs in asked[:2]])
    assert counted.lookups == [12, 4]
    assert all(answer[1] is not None for answer in again), "nothing was cached"


async def test_concurrent_revokes_are_written_together(store: Store) -> None:
    counted = Counting(store)
    svc = Revoker(BatchingStore(counted), lifetimes=LIFETIMES)
    future = int(time.time()) + 3600
    requests = [RevokeRequest("jti", f"b{i}") for i in range(10)]
    requests.append(RevokeRequest("sub", "eve", issued_before=future))
    outcomes = await asyncio.gather(*[svc.revoke(r, actor=f"a{i % 2}")
                                      for i, r in enumerate(requests)],
                                    return_exceptions=True)
    assert counted.writes == [10]
    assert all(isinstance(o, Revoked) and o.created for o in outcomes[:10])
    assert isinstance(outcomes[10], InvalidInput), "a bad request fails alone"
    stored = await store.get_many([("jti", f"b{i}") for i in range(10)])
    assert [r.actor if r else None for r in stored] == [f"a{i % 2}" for i in range(10)]


async def test_a_failed_batch_fails_every_caller() -> None:
    async def broken(pairs: list[tuple[str, str]]) -> list[Record | None]:
        raise StoreUnavailable("down")

    coalescer: Coalescer[tuple[str, str], Record | None] = Coalescer(broken)
    outcomes = await asyncio.gather(*[coalescer.submit([("jti", str(i))]) for i in range(5)],
                                    return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
