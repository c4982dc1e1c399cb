"""The mirror's checkpoint: a restarted host resumes from the table it saved, or from the
table its dead keeper left, and only when the events stream still covers it; a file that
cannot be trusted is never restored."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from revoker import metrics
from revoker.model import Event, Lifetimes, RevokeRequest
from revoker.service import Revoker
from revoker.store import checkpoint
from revoker.store.base import ExportRow, Store
from revoker.store.checkpoint import Checkpointing, Meta, Unusable
from revoker.store.layer import StoreLayer
from revoker.store.mirror import Keeper, MirrorStore
from revoker.store.redis import RedisStore
from revoker.store.shared import HEADER_BYTES, SLOT_BYTES, Control, Table, fingerprint
from tests.polling import eventually
from tests.redis_proc import RedisProcess

IDENTITY = "redis://127.0.0.1:1/0 test:"


def filled_table(path: str | None, count: int = 50) -> Table:
    table = Table.create(path, 1024)
    table.begin()
    for i in range(count):
        table.put(fingerprint("jti", f"t{i}"), 1000 + i, 4_000_000_000, 0xFFFFFFFF)
    table.end()
    return table


def meta_of(table: Table, **fields: Any) -> Meta:
    return Meta(**{"store": IDENTITY, "last_id": "5-0", "added": 5,
                   "capacity": table.capacity, "entries": table.used,
                   "saved_at": time.time(), **fields})


def saved(tmp_path: Path, **fields: Any) -> tuple[str, bytes]:
    table = filled_table(None)
    path = str(tmp_path / "mirror.ckpt")
    data = checkpoint.image(table)
    checkpoint.save(path, data, meta_of(table, **fields))
    return path, data


def tables_in(tmp_path: Path) -> Callable[[int], Table]:
    def new_table(capacity: int) -> Table:
        return Table.create(str(tmp_path / f"table.{len(os.listdir(tmp_path))}"), capacity)
    return new_table


def test_a_saved_table_comes_back_whole(tmp_path: Path) -> None:
    path, data = saved(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    table, meta = checkpoint.restore(path, IDENTITY, tables_in(tmp_path))
    assert bytes(table.mm) == data
    assert (meta.last_id, meta.added, meta.entries) == ("5-0", 5, 50)
    assert table.find(fingerprint("jti", "t7")) == (1007, 4_000_000_000, 0xFFFFFFFF)
    assert table.find(fingerprint("jti", "other")) is None


def _flip_last_byte(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))


def _truncate(path: str) -> None:
    os.truncate(path, os.path.getsize(path) - 28)


def _extend(path: str) -> None:
    with open(path, "ab") as f:
        f.write(b"\0")


def _group_writable(path: str) -> None:
    os.chmod(path, 0o620)


def _symlink(path: str) -> None:
    os.replace(path, path + ".real")
    os.symlink(path + ".real", path)


def _header(path: str, change: Callable[[dict[str, Any]], None]) -> None:
    raw = Path(path).read_bytes()
    size = struct.unpack_from("<I", raw, 8)[0]
    fields = json.loads(raw[12:12 + size])
    change(fields)
    header = json.dumps(fields).encode()
    Path(path).write_bytes(raw[:8] + struct.pack("<I", len(header)) + header + raw[12 + size:])


@pytest.mark.parametrize(("spoil", "reason"), [
    (lambda p: os.unlink(p), "no checkpoint"),
    (_flip_last_byte, "digest"),
    (_truncate, "truncated"),
    (_extend, "too long"),
    (_group_writable, "only it can write"),
    (_symlink, "cannot open"),
    (lambda p: Path(p).write_bytes(b"RVKMIRD1" + bytes(100)), "not a mirror checkpoint"),
    (lambda p: Path(p).write_bytes(b"RVKMIRK1" + struct.pack("<I", 2**31)),
     "not a mirror checkpoint"),
    (lambda p: _header(p, lambda f: f.update(version=3)), "version"),
    (lambda p: _header(p, lambda f: f.update(store="redis://elsewhere:6379/0 test:")),
     "another store"),
    (lambda p: _header(p, lambda f: f.update(capacity=-1)), "damaged header"),
    (lambda p: _header(p, lambda f: f.update(extra=1)), "damaged header"),
    (lambda p: _header(p, lambda f: f.update(entries=3)), "digest"),
    (lambda p: _header(p, lambda f: f.update(last_id="6-0")), "digest"),  # covered too
    (lambda p: _header(p, lambda f: f.update(last_id="5,0")), "damaged header"),
])
def test_a_checkpoint_that_cannot_be_trusted_is_refused(
        tmp_path: Path, spoil: Callable[[str], None], reason: str) -> None:
    path, _ = saved(tmp_path)
    spoil(path)
    tables = tmp_path / "tables"
    tables.mkdir()
    with pytest.raises(Unusable, match=reason):
        checkpoint.restore(path, IDENTITY, tables_in(tables))
    assert os.listdir(tables) == []  # a refused restore leaves no table behind


def test_a_checkpoint_of_the_previous_version_is_still_restored(tmp_path: Path) -> None:
    """Version 1 tables hold no pending entry (the only change since): an upgraded
    service resumes from its checkpoint instead of loading everything."""
    path, data = saved(tmp_path, version=1)
    table, meta = checkpoint.restore(path, IDENTITY, lambda n: Table.create(None, n))
    assert meta.version == 1
    assert bytes(table.mm) == data
    table.close()


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(Unusable):
        checkpoint.restore(str(tmp_path), IDENTITY, tables_in(tmp_path))


def test_the_identity_names_the_store_without_its_password() -> None:
    identity = checkpoint.store_identity("redis://user:s3cret@cache:6379/2", "revoker:")
    assert "s3cret" not in identity
    assert identity != checkpoint.store_identity("redis://user:s3cret@cache:6379/3",
                                                 "revoker:")
    assert identity != checkpoint.store_identity("redis://user:s3cret@cache:6379/2", "x:")


# -- the keeper: resuming against a real Redis --------------------------------------------


class CountingExports(StoreLayer):
    """The store, counting the export pages a load (or a fill) reads: a keeper that
    resumes a filled table reads none."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.exports = 0
        self.events_after: list[str | None] = []

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        self.exports += 1
        return await self.inner.export_page(cursor=cursor, count=count)

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        self.exports += 1
        return await self.inner.export_names(cursor=cursor, count=count)

    async def events(self, *, after: str | None, limit: int) -> list[Event]:
        self.events_after.append(after)
        return await self.inner.events(after=after, limit=limit)


def held(keeper: Keeper | None, value: str) -> bool:
    assert keeper is not None
    found = keeper.table.find(fingerprint("jti", value)) if keeper.table else None
    return found is not None and found[1] > time.time()


async def revoke(store: Store, *values: str) -> None:
    svc = Revoker(store, lifetimes=Lifetimes(3600, 30))
    for value in values:
        await svc.revoke(RevokeRequest("jti", value), actor="test")


async def unrevoke(store: Store, value: str) -> None:
    await Revoker(store, lifetimes=Lifetimes(3600, 30)).unrevoke("jti", value)


def plan(tmp_path: Path, prefix: str, every_s: float = 3600.0) -> Checkpointing:
    return Checkpointing(path=str(tmp_path / "mirror.ckpt"),
                         identity=checkpoint.store_identity("redis://test", prefix),
                         every_s=every_s)


async def started(store: Store, checkpointing: Checkpointing) -> MirrorStore:
    """A mirror in sync whose table holds every record's details (filled)."""
    mirror = MirrorStore(store, block_ms=200, checkpointing=checkpointing)
    await mirror.start()
    await eventually(lambda: mirror.in_sync and not mirror.state().get("filling"))
    return mirror


@pytest.mark.redis
async def test_a_restarted_mirror_resumes_from_its_checkpoint(
        redis_store: RedisStore, tmp_path: Path, prefix: str) -> None:
    await revoke(redis_store, "a", "b")
    first = await started(redis_store, plan(tmp_path, prefix))
    await revoke(redis_store, "c")
    await eventually(lambda: held(first.keeper, "c"))
    await first.stop()  # saves the checkpoint on the way out
    assert os.path.exists(tmp_path / "mirror.ckpt")
    await revoke(redis_store, "d")  # after the save: caught up from the stream
    await unrevoke(redis_store, "a")
    counting = CountingExports(redis_store)
    second = await started(counting, plan(tmp_path, prefix))
    try:
        assert counting.exports == 0
        assert [held(second.keeper, v) for v in "abcd"] == [False, True, True, True]
        await revoke(redis_store, "e")  # and it follows the stream from there
        await eventually(lambda: held(second.keeper, "e"))
    finally:
        await second.stop()


@pytest.mark.redis
async def test_a_checkpoint_the_stream_no_longer_covers_is_not_used(
        redis_store: RedisStore, tmp_path: Path, prefix: str, raw: Any) -> None:
    await revoke(redis_store, "a")
    first = await started(redis_store, plan(tmp_path, prefix))
    await first.stop()
    await revoke(redis_store, "lost")
    await unrevoke(redis_store, "a")
    await raw.xtrim(f"{prefix}events", maxlen=0, approximate=False)  # events since: gone
    await revoke(redis_store, "after")
    counting = CountingExports(redis_store)
    second = await started(counting, plan(tmp_path, prefix))
    try:
        assert counting.exports > 0  # loaded from the store instead
        assert [held(second.keeper, v) for v in ("a", "lost", "after")] == [False, True, True]
    finally:
        await second.stop()


@pytest.mark.redis
async def test_a_checkpoint_of_another_store_is_not_used(
        redis_server: RedisProcess, tmp_path: Path, prefix: str) -> None:
    other = RedisStore(redis_server.url, prefix="o" + prefix, timeout_s=1.0,
                         events_maxlen=1000)
    mine = RedisStore(redis_server.url, prefix=prefix, timeout_s=1.0, events_maxlen=1000)
    await other.open()
    await mine.open()
    try:
        await revoke(other, "theirs")
        first = await started(other, plan(tmp_path, "o" + prefix))
        await first.stop()
        await revoke(mine, "mine")
        counting = CountingExports(mine)
        second = await started(counting, plan(tmp_path, prefix))
        try:
            assert counting.exports > 0
            assert held(second.keeper, "mine") and not held(second.keeper, "theirs")
        finally:
            await second.stop()
    finally:
        await other.close()
        await mine.close()


@pytest.mark.redis
async def test_checkpoints_are_saved_while_following(
        redis_store: RedisStore, tmp_path: Path, prefix: str) -> None:
    checkpointing = plan(tmp_path, prefix, every_s=0.05)
    mirror = await started(redis_store, checkpointing)
    try:
        await revoke(redis_store, "x")
        await eventually(lambda: held(mirror.keeper, "x"))
        assert mirror.keeper is not None
        position = mirror.keeper.position

        def covers_x() -> bool:
            try:
                table, meta = checkpoint.restore(checkpointing.path, checkpointing.identity,
                                                 lambda capacity: Table.create(None, capacity))
            except Unusable:
                return False
            return meta.last_id == position.last_id and \
                table.find(fingerprint("jti", "x")) is not None

        await eventually(covers_x)
    finally:
        await mirror.stop()


# -- a keeper that died: the next one adopts the table it left ------------------------------


async def keeper_on(store: Store, control_path: str) -> tuple[Keeper, asyncio.Task[None]]:
    control = Control.attach(control_path, writable=True)
    keeper = Keeper(store, control, directory=os.path.dirname(control_path), block_ms=200)
    task = asyncio.create_task(keeper.run())
    await eventually(lambda: keeper.synced and not keeper.filling)
    return keeper, task


async def dies(task: asyncio.Task[None]) -> None:
    """What a killed keeper leaves: its table and control segment, nothing cleaned up."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def stopped(keeper: Keeper, task: asyncio.Task[None]) -> None:
    """The end of a test's own keeper: its task and its tail."""
    keeper.stopping = True
    await dies(task)
    await keeper.stop()


@pytest.mark.redis
@pytest.mark.parametrize("mid_change", [False, True])
async def test_a_new_keeper_adopts_the_table_a_dead_one_left(
        redis_store: RedisStore, tmp_path: Path, mid_change: bool, raw: Any,
        prefix: str) -> None:
    control_path = str(tmp_path / "revoker-mirror-1")
    Control.create(control_path).close()
    await revoke(redis_store, "a", "b")
    first, task = await keeper_on(redis_store, control_path)
    assert first.table is not None and first.table.path is not None
    left, position = first.table.path, first.position
    # Only the last event is kept: resuming works only from where the dead keeper was.
    await raw.xtrim(f"{prefix}events", maxlen=1, approximate=False)
    if mid_change:  # it died inside a write section: the table cannot be trusted
        first.table.begin()
    await dies(task)
    await revoke(redis_store, "c")
    await unrevoke(redis_store, "b")
    counting = CountingExports(redis_store)
    second, task = await keeper_on(counting, control_path)
    try:
        assert second.table is not None
        if mid_change:
            assert counting.exports > 0 and second.table.path != left
            assert not os.path.exists(left)  # the untrusted table is removed
        else:
            assert counting.exports == 0 and second.table.path == left
            # caught up from where the dead keeper was, never from the start
            assert position.last_id != "0-0"
            assert position.last_id in counting.events_after
            assert not {None, "0-0"} & set(counting.events_after)
        assert [held(second, v) for v in "abc"] == [True, False, True]
        state = second.control.read()
        assert state is not None and state.in_sync
    finally:
        await stopped(second, task)


def saved_at() -> float:
    (family,) = metrics.MIRROR_CHECKPOINT_SAVED.collect()
    return float(family.samples[0].value)


@pytest.mark.redis
async def test_a_checkpoint_that_cannot_be_written_changes_nothing_else(
        redis_store: RedisStore, tmp_path: Path, prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    checkpointing = Checkpointing(path=str(gone / "mirror.ckpt"),
                                  identity=checkpoint.store_identity("redis://test", prefix),
                                  every_s=0.05)
    mirror = await started(redis_store, checkpointing)
    try:
        shutil.rmtree(gone)  # the volume went away: every save fails
        await revoke(redis_store, "x")
        await eventually(lambda: held(mirror.keeper, "x"))
        await eventually(lambda: "mirror checkpoint not saved" in caplog.text)
        assert mirror.keeper is not None
        assert not await mirror.keeper.save_checkpoint()
        await revoke(redis_store, "y")  # still following
        await eventually(lambda: held(mirror.keeper, "y"))
        assert mirror.in_sync
    finally:
        await mirror.stop()
    assert list(tmp_path.iterdir()) == []  # and no temporary file is left


@pytest.mark.redis
async def test_a_saved_checkpoint_is_a_metric(redis_store: RedisStore, tmp_path: Path,
                                              prefix: str) -> None:
    before = time.time()
    mirror = await started(redis_store, plan(tmp_path, prefix))
    assert mirror.keeper is not None
    assert await mirror.keeper.save_checkpoint()
    assert saved_at() >= before
    await mirror.stop()


@pytest.mark.redis
async def test_a_checkpoint_that_breaks_the_keeper_is_loaded_over(
        redis_store: RedisStore, tmp_path: Path, prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """A table that passes the file's checks but has no empty slot (only a crafted file
    can) fails the first write; the keeper then loads from the store instead of trying
    the same checkpoint forever."""
    await revoke(redis_store, "a")
    first = await started(redis_store, plan(tmp_path, prefix))
    assert first.keeper is not None and first.keeper.table is not None
    capacity = first.keeper.table.capacity
    await first.stop()
    full = Table.create(None, capacity)
    full.begin()
    for i in range(capacity):
        at = HEADER_BYTES + i * SLOT_BYTES
        full.mm[at:at + 16] = fingerprint("jti", f"filler-{i}")
    full.end()
    saved = plan(tmp_path, prefix)
    _, meta = checkpoint.restore(saved.path, saved.identity, lambda n: Table.create(None, n))
    full.mm[24:32] = meta.entries.to_bytes(8, "little")  # the header's "used" agrees
    checkpoint.save(saved.path, checkpoint.image(full), meta)
    await revoke(redis_store, "b")  # an event to apply: the first write fails
    counting = CountingExports(redis_store)
    second = await started(counting, saved)
    try:
        assert "mirror sync failed" in caplog.text  # it was restored, and failed
        assert counting.exports > 0
        assert held(second.keeper, "a") and held(second.keeper, "b")
    finally:
        await second.stop()


# -- what a keeper that dies at the wrong moment leaves ------------------------------------


class StuckLoading(StoreLayer):
    """A store whose full load never ends: the keeper is killed in the middle of it."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.loading = asyncio.Event()

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        self.loading.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def export_names(self, *, cursor: str | None,
                           count: int) -> tuple[list[bytes], str | None]:
        self.loading.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.redis
async def test_a_keeper_killed_while_reloading_leaves_a_table_the_next_cannot_misread(
        redis_store: RedisStore, tmp_path: Path, raw: Any, prefix: str) -> None:
    """K1 dies; its stream is lost and recreated (a gap); K2 finds the gap and dies while
    reloading. K3 must not take K1's table as a table of nothing and replay only the new
    stream: that would miss what was revoked while the stream was lost."""
    control_path = str(tmp_path / "revoker-mirror-1")
    Control.create(control_path).close()
    await revoke(redis_store, "a", "b", "c")  # the new stream will count fewer: a gap
    _, task = await keeper_on(redis_store, control_path)
    await dies(task)
    await revoke(redis_store, "lost")
    await raw.delete(f"{prefix}events")  # the records stay; the stream starts over
    await revoke(redis_store, "new")
    stuck = StuckLoading(redis_store)
    second = Keeper(stuck, Control.attach(control_path, writable=True),
                    directory=os.path.dirname(control_path), block_ms=200)
    task = asyncio.create_task(second.run())
    await asyncio.wait_for(stuck.loading.wait(), 5)  # it found the gap and reloads
    await dies(task)
    third, task = await keeper_on(CountingExports(redis_store), control_path)
    try:
        assert [held(third, v) for v in ("a", "lost", "new")] == [True, True, True]
    finally:
        await stopped(third, task)


@pytest.mark.redis
async def test_a_keeper_killed_mid_control_write_never_reuses_a_generation(
        redis_store: RedisStore, tmp_path: Path) -> None:
    """With the control page left mid-write (unreadable), the next keeper must still give
    its table a new generation number, or a worker that cached the old number would keep
    reading the dead keeper's table."""
    control_path = str(tmp_path / "revoker-mirror-1")
    Control.create(control_path).close()
    await revoke(redis_store, "a")
    first, task = await keeper_on(redis_store, control_path)
    worker = MirrorStore(redis_store, control_path=control_path, block_ms=200)
    await eventually(lambda: worker.in_sync)
    assert (await worker.get_many([("jti", "a")]))[0] is not None
    await dies(task)
    seq = int.from_bytes(first.control.mm[8:16], "little")
    first.control.mm[8:16] = (seq + 1).to_bytes(8, "little")  # died inside a write
    await revoke(redis_store, "after")
    second, task = await keeper_on(redis_store, control_path)
    try:
        assert second.generation > first.generation
        await eventually(lambda: worker.in_sync)
        assert (await worker.get_many([("jti", "after")]))[0] is not None
    finally:
        await stopped(second, task)


@pytest.mark.redis
async def test_a_checkpoint_of_a_stream_lost_since_is_not_used(
        redis_store: RedisStore, tmp_path: Path, prefix: str, raw: Any) -> None:
    """Redis lost everything after the save, then took more revocations than the saved
    counter: the new stream passes the check of the saved position (its counter is past
    it), but not the check of the position the replay reaches, so it is never published."""
    await revoke(redis_store, "a", "b", "c")
    first = await started(redis_store, plan(tmp_path, prefix))
    assert first.keeper is not None and first.keeper.position.added is not None
    saved_added = first.keeper.position.added
    await first.stop()
    keys = [key async for key in raw.scan_iter(match=f"{prefix}*")]
    await raw.delete(*keys)  # everything of this store is gone
    fresh = [f"new{i}" for i in range(saved_added + 2)]
    await revoke(redis_store, *fresh)
    counting = CountingExports(redis_store)
    second = await started(counting, plan(tmp_path, prefix))
    try:
        assert counting.exports > 0  # loaded from the store
        assert all(held(second.keeper, v) for v in fresh)
        assert not held(second.keeper, "a")
    finally:
        await second.stop()
