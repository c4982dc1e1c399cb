"""A mirror's first load by names: the keeper is in sync once it holds every record's
name (a pending entry each, which sends a lookup that finds it to the store), then reads
the details in the background (the fill) without ever overwriting what an event wrote
since. On every backend (the keeper is told to load by names even where the store's
listing of names is no cheaper, so that the memory store runs the same steps)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from revoker.errors import StoreUnavailable
from revoker.model import Claims, Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store.base import ExportRow, Store
from revoker.store.checkpoint import Checkpointing
from revoker.store.layer import StoreLayer
from revoker.store.mirror import Keeper, MirrorStore
from revoker.store.redis import RedisStore
from revoker.store.shared import PENDING, Control, fingerprint
from tests.polling import eventually
from tests.redis_proc import RedisProcess

LIFETIMES = Lifetimes(3600, 30)


class HeldFill(StoreLayer):
    """The store, with the fill's pages held back until ``released``: each page is read
    from the store first (``read`` is set; so what it hands over may be older than the
    store by then), or with ``read_first=False`` only once released; the first
    ``free_pages`` pages are not held. Lookups that reach the store are counted."""

    def __init__(self, inner: Store, *, read_first: bool = True, free_pages: int = 0) -> None:
        super().__init__(inner)
        self.read_first = read_first
        self.free_pages = free_pages
        self.pages = 0
        self.read = asyncio.Event()
        self.released = asyncio.Event()
        self.lookups = 0
        self.names_pages = 0

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        self.names_pages += 1
        return await self.inner.export_names(cursor=cursor, count=count)

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        self.pages += 1
        if self.pages <= self.free_pages:
            return await self.inner.export_page(cursor=cursor, count=count)
        if not self.read_first:
            self.read.set()
            await self.released.wait()
        page = await self.inner.export_page(cursor=cursor, count=count)
        self.read.set()
        await self.released.wait()
        return page

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        self.lookups += 1
        return await self.inner.get_many(pairs)


@pytest.fixture
async def held_mirror(store: Store) -> AsyncIterator[tuple[HeldFill, MirrorStore]]:
    """A mirror of the suite's store, loaded by names, its fill held back."""
    held = HeldFill(store)
    mirror = MirrorStore(held, block_ms=200, names_first=True)
    yield held, mirror
    held.released.set()
    await mirror.stop()


def slot(mirror: MirrorStore, kind: str, value: str) -> tuple[int, int, int] | None:
    assert mirror.keeper is not None and mirror.keeper.table is not None
    return mirror.keeper.table.find(fingerprint(kind, value))


def filling(mirror: MirrorStore) -> bool:
    return bool(mirror.state().get("filling"))


async def revoke(store: Store, kind: str, value: str, **fields: Any) -> None:
    await Revoker(store, lifetimes=LIFETIMES).revoke(RevokeRequest(kind, value, **fields),
                                                     actor="test")


async def test_names_make_it_ready_and_a_pending_hit_asks_the_store(
        store: Store, held_mirror: tuple[HeldFill, MirrorStore]) -> None:
    held, mirror = held_mirror
    await revoke(store, "jti", "stolen", reason="stolen laptop")
    await revoke(store, "sub", "bob")
    whole = await store.get("jti", "stolen")
    bob = await store.get("sub", "bob")
    assert whole is not None and bob is not None and bob.issued_before is not None
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    assert filling(mirror) and (await mirror.health()).local_ok
    assert slot(mirror, "jti", "stolen") == PENDING
    # A miss is answered from the table alone ...
    before = held.lookups
    assert await mirror.get_many([("jti", "fresh"), ("sid", "s1")]) == [None, None]
    assert held.lookups == before
    # ... a pending entry from the store: the whole record, cutoff rules included.
    assert await mirror.get_many([("jti", "stolen"), ("jti", "fresh")]) == [whole, None]
    assert held.lookups == before + 1
    checker = Revoker(mirror, lifetimes=LIFETIMES)
    assert (await checker.check(Claims(sub="bob", iat=bob.issued_before - 10))).revoked
    assert not (await checker.check(Claims(sub="bob", iat=bob.issued_before + 10))).revoked
    # Once filled, hits are answered from the table too.
    held.released.set()
    await eventually(lambda: not filling(mirror))
    assert slot(mirror, "jti", "stolen") == (whole.revoked_at, whole.expires_at, 0xFFFFFFFF)
    assert slot(mirror, "sub", "bob") == (bob.revoked_at, bob.expires_at, bob.issued_before)
    before = held.lookups
    found = await mirror.get_many([("jti", "stolen"), ("sub", "bob")])
    assert [r.value if r else None for r in found] == ["stolen", "bob"]
    assert held.lookups == before
    assert held.names_pages >= 1


async def test_a_fill_page_older_than_the_store_is_corrected_by_the_events(
        store: Store, held_mirror: tuple[HeldFill, MirrorStore]) -> None:
    """The fill's page is read, then two of its records change before it is applied:
    the table ends as the store is, not as the page was (the events that follow the
    page are applied after it)."""
    held, mirror = held_mirror
    await revoke(store, "jti", "renewed", ttl_s=60)
    await revoke(store, "jti", "unrevoked", ttl_s=60)
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    await asyncio.wait_for(held.read.wait(), 5)  # the page is read, not yet applied
    await revoke(store, "jti", "renewed", ttl_s=3000)  # the later expiry wins
    assert await Revoker(store, lifetimes=LIFETIMES).unrevoke("jti", "unrevoked") is not None
    renewed = await store.get("jti", "renewed")
    assert renewed is not None
    assert slot(mirror, "jti", "renewed") == PENDING  # the keeper waits on the page
    held.released.set()
    await eventually(lambda: not filling(mirror))

    def as_stored(found: tuple[int, int, int] | None) -> bool:
        return found is not None and found[1] == renewed.expires_at

    await eventually(lambda: as_stored(slot(mirror, "jti", "renewed")))
    await eventually(lambda: slot(mirror, "jti", "unrevoked") == (0, 0, 0xFFFFFFFF))
    assert await mirror.get_many([("jti", "unrevoked")]) == [None]


@pytest.mark.redis
async def test_an_entry_the_fill_did_not_find_asks_the_store_until_swept(
        redis_store: RedisStore, raw: Any, prefix: str) -> None:
    """A record that goes away without an event (Redis expired it) between the names and
    the fill stays pending: lookups ask the store, which says it is gone, and once the
    fill is over the sweep frees its slot."""
    await revoke(redis_store, "jti", "gone")
    await revoke(redis_store, "jti", "kept")
    held = HeldFill(redis_store, read_first=False)
    mirror = MirrorStore(held, block_ms=200, names_first=True)
    try:
        await mirror.start()
        await eventually(lambda: mirror.in_sync)
        await raw.delete(f"{prefix}jti:gone")  # as Redis's own expiry does: no event
        held.released.set()
        await eventually(lambda: not filling(mirror))
        assert slot(mirror, "jti", "gone") == PENDING
        assert await mirror.get_many([("jti", "gone")]) == [None]
        assert mirror.keeper is not None and mirror.keeper.table is not None
        mirror.keeper.sweep_now()
        assert slot(mirror, "jti", "gone") is None
        assert slot(mirror, "jti", "kept") not in (None, PENDING)
        assert mirror.keeper.table.used == 1
    finally:
        held.released.set()
        await mirror.stop()


@pytest.mark.redis
async def test_a_fill_that_meets_another_server_starts_over() -> None:
    """Redis restarts (same data, from its AOF) in the middle of the fill: its SCAN
    cursor means nothing to the new process, where resuming would skip records, which
    would then be left pending and swept away. The page on the new server is refused
    and the fill starts over: every record ends in the table with its details."""
    server = RedisProcess(["--appendonly", "yes", "--appendfsync", "always"]).start()
    store = RedisStore(server.url, prefix="fill:", timeout_s=1.0, events_maxlen=10_000)
    await store.open()
    mirror: MirrorStore | None = None
    try:
        svc = Revoker(store, lifetimes=LIFETIMES)
        values = [f"r{i}" for i in range(5000)]
        await svc.revoke_many([RevokeRequest("jti", v) for v in values], actor="t")
        held = HeldFill(store, read_first=False, free_pages=2)
        mirror = MirrorStore(held, block_ms=200, names_first=True)
        await mirror.start()
        await asyncio.wait_for(held.read.wait(), 5)  # two pages filled, the third held
        server.restart()
        held.released.set()
        await eventually(lambda: mirror is not None and mirror.in_sync and not filling(mirror),
                         timeout_s=30)
        assert mirror.keeper is not None and mirror.keeper.table is not None
        mirror.keeper.sweep_now()
        slots = [mirror.keeper.table.find(fingerprint("jti", v)) for v in values]
        assert sum(found is None for found in slots) == 0
        assert sum(found == PENDING for found in slots) == 0
    finally:
        if mirror is not None:
            await mirror.stop()
        await store.close()
        server.stop()


class FailsOnce(StoreLayer):
    """The store, failing the first page of the fill."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.failed = False

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("the store did not answer in time (test)")
        return await self.inner.export_page(cursor=cursor, count=count)


async def test_a_failed_fill_page_is_tried_again_and_the_mirror_stays_in_sync(
        store: Store) -> None:
    """The table and the position are intact when a fill page fails: lookups keep being
    answered from the table, and the page is asked for again."""
    await revoke(store, "jti", "a")
    failing = FailsOnce(store)
    mirror = MirrorStore(failing, block_ms=200, names_first=True)
    readings: list[bool] = []
    try:
        await mirror.start()
        await eventually(lambda: mirror.in_sync)

        def watched() -> bool:
            readings.append(mirror.in_sync)
            return not filling(mirror)

        await eventually(watched)
        assert failing.failed and all(readings)
        found = slot(mirror, "jti", "a")
        assert found is not None and found != PENDING
        assert mirror.keeper is not None and mirror.keeper.resyncs == 1
    finally:
        await mirror.stop()


class HeldNames(StoreLayer):
    """The store, with the load's names pages after the first held until ``released``."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.pages = 0
        self.held = asyncio.Event()
        self.released = asyncio.Event()

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        self.pages += 1
        if self.pages == 2:
            self.held.set()
            await self.released.wait()
        return await self.inner.export_names(cursor=cursor, count=count)


@pytest.mark.redis
async def test_a_load_by_names_that_meets_another_server_starts_over() -> None:
    """The same for the names: the load starts over rather than resume a SCAN on a
    server that cannot know its cursor (a record skipped there would be absent)."""
    server = RedisProcess(["--appendonly", "yes", "--appendfsync", "always"]).start()
    store = RedisStore(server.url, prefix="names:", timeout_s=1.0, events_maxlen=10_000)
    await store.open()
    mirror: MirrorStore | None = None
    try:
        values = [f"r{i}" for i in range(20_000)]
        await Revoker(store, lifetimes=LIFETIMES).revoke_many(
            [RevokeRequest("jti", v) for v in values], actor="t")
        held = HeldNames(store)
        mirror = MirrorStore(held, block_ms=200, names_first=True)
        await mirror.start()
        await asyncio.wait_for(held.held.wait(), 5)  # one page of names loaded
        server.restart()
        held.released.set()
        await eventually(lambda: mirror is not None and mirror.in_sync, timeout_s=30)
        assert mirror.keeper is not None and mirror.keeper.table is not None
        assert held.pages > 3  # it started over
        assert all(mirror.keeper.table.find(fingerprint("jti", v)) is not None
                   for v in values)
    finally:
        if mirror is not None:
            await mirror.stop()
        await store.close()
        server.stop()


async def test_a_checkpoint_saved_during_the_fill_is_filled_after_a_restart(
        store: Store, tmp_path: Path) -> None:
    """A service stopped in the middle of the fill saves the table with its pending
    entries; the next one restores it, does not reload the names, and fills it."""
    await revoke(store, "jti", "a", reason="r")
    plan = Checkpointing(path=str(tmp_path / "mirror.ckpt"), identity="test",
                         every_s=3600)
    held = HeldFill(store)
    first = MirrorStore(held, block_ms=200, names_first=True, checkpointing=plan)
    await first.start()
    await eventually(lambda: first.in_sync)
    await asyncio.wait_for(held.read.wait(), 5)
    await first.stop()  # saves the checkpoint, pending entries and all
    again = HeldFill(store)
    again.released.set()
    second = MirrorStore(again, block_ms=200, names_first=True, checkpointing=plan)
    try:
        await second.start()
        await eventually(lambda: second.in_sync and not filling(second))
        assert again.names_pages == 0  # restored, not reloaded
        found = slot(second, "jti", "a")
        assert found is not None and found != PENDING
    finally:
        await second.stop()


async def _keeper(store: Store, control_path: str) -> tuple[Keeper, asyncio.Task[None]]:
    keeper = Keeper(store, Control.attach(control_path, writable=True),
                    directory=os.path.dirname(control_path), block_ms=200, names_first=True)
    task = asyncio.create_task(keeper.run())
    await eventually(lambda: keeper.synced)
    return keeper, task


async def _killed(task: asyncio.Task[None]) -> None:
    """What a killed keeper leaves: its table and control segment, nothing cleaned up."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_keeper_killed_during_the_fill_leaves_a_table_the_next_one_fills(
        store: Store, tmp_path: Path) -> None:
    """The table says it is being filled: the keeper that adopts it does not reload the
    names, and fills it (until then its pending entries ask the store, never read as
    absent)."""
    control_path = str(tmp_path / "revoker-mirror-1")
    Control.create(control_path).close()
    await revoke(store, "jti", "a", reason="r")
    first = HeldFill(store)
    keeper, task = await _keeper(first, control_path)
    await asyncio.wait_for(first.read.wait(), 5)
    await _killed(task)  # in the middle of the fill
    worker = MirrorStore(store, control_path=control_path, block_ms=200)
    assert await worker.get_many([("jti", "a")]) == [await store.get("jti", "a")]
    second = HeldFill(store)
    second.released.set()
    adopter, task = await _keeper(second, control_path)
    try:
        await eventually(lambda: not adopter.filling)
        assert second.names_pages == 0  # adopted, not reloaded
        assert adopter.table is not None and keeper.table is not None
        assert adopter.table.path == keeper.table.path
        found = adopter.table.find(fingerprint("jti", "a"))
        assert found is not None and found != PENDING and not adopter.table.filling
    finally:
        adopter.stopping = True
        await _killed(task)
        await adopter.stop()
        await keeper.stop()


async def test_the_names_listing_holds_records_only(store: Store) -> None:
    """Every record's ``kind:value``, and not the stream or the replay guards, over
    pages of two keys (the suite's Redis holds other tests' keys too: many pages)."""
    await revoke(store, "jti", "j1")
    await revoke(store, "sub", "s1")
    await revoke(store, "client", "c:1")
    assert await store.remember_once("bcl:issuer:token", int(time.time()) + 60)
    names: set[bytes] = set()
    cursor: str | None = None
    for _ in range(10_000_000):  # (SCAN ends; this only bounds a bug)
        page, cursor = await store.export_names(cursor=cursor, count=2)
        names.update(page)
        if cursor is None:
            break
    assert names == {b"jti:j1", b"sub:s1", b"client:c:1"}


def test_the_keeper_loads_by_names_where_the_store_lists_them_cheaply(store: Store) -> None:
    keeper = MirrorStore(store).keeper
    assert keeper is not None
    assert keeper.names_first is (type(store).__name__ in ("RedisStore", "SentinelStore"))

