"""The local denylist mirror, on every backend: load, propagation, expiry, gaps, outages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from revoker.config import Settings
from revoker.errors import StoreUnavailable
from revoker.model import Claims, Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store import mirror as mirror_module
from revoker.store import open_store
from revoker.store.base import Store
from revoker.store.batcher import BatchingStore
from revoker.store.layer import StoreLayer
from revoker.store.mirror import ABSENT_SIZE, FP_MEMO_SIZE, Absences, Gap, MirrorStore
from revoker.store.redis import RedisStore
from revoker.store.shared import Table, fingerprint
from revoker.web.app import create_app
from tests.conftest import FakeClock
from tests.lane_server import LaneTestServer
from tests.polling import eventually
from tests.redis_proc import RedisProcess
from tests.web.conftest import CHECK_KEY, KEYS_ENV, auth

LIFETIMES = Lifetimes(3600, 30)


@pytest.fixture
async def mirrors(store: Store) -> AsyncIterator[Callable[..., MirrorStore]]:
    """Mirrors of the suite's store (each backend); stopped, not closed: the store is the
    fixture's."""
    made: list[MirrorStore] = []

    def factory(**options: Any) -> MirrorStore:
        mirror = MirrorStore(store, **{"block_ms": 200, **options})
        made.append(mirror)
        return mirror

    yield factory
    for mirror in made:
        await mirror.stop()


def held(mirror: MirrorStore, kind: str, value: str) -> bool:
    """Whether the mirror's table holds a live entry for ``kind:value``."""
    assert mirror.keeper is not None
    table = mirror.keeper.table
    found = table.find(fingerprint(kind, value)) if table is not None else None
    return found is not None and found[1] > 0


def settled(mirror: MirrorStore) -> bool:
    """In sync, with every record's details in the table (a first load by names fills
    them in the background)."""
    return mirror.in_sync and not mirror.state().get("filling")


def writer(store: Store, clock: Callable[[], float] = time.time) -> Revoker:
    return Revoker(store, lifetimes=LIFETIMES, clock=clock)


async def revoke_jti(svc: Revoker, value: str, **fields: Any) -> None:
    await svc.revoke(RevokeRequest("jti", value, **fields), actor="test")


async def test_snapshot_loads_every_record(store: Store,
                                           mirrors: Callable[..., MirrorStore]) -> None:
    svc = writer(store)
    await svc.revoke_many([RevokeRequest("jti", f"j{i}") for i in range(250)], actor="t")
    await svc.revoke(RevokeRequest("sub", "alice", reason="left"), actor="t")
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: settled(mirror))
    assert mirror.keeper is not None and mirror.keeper.table is not None
    assert mirror.keeper.table.used == 251
    found = await mirror.get_many([("jti", "j7"), ("jti", "nope"), ("sub", "alice")])
    whole_j7, whole_alice = await store.get("jti", "j7"), await store.get("sub", "alice")
    assert whole_j7 is not None and whole_alice is not None
    assert found[1] is None
    # A lookup answers from the table: what matching needs, not the details ...
    summary_j7, summary_alice = found[0], found[2]
    assert summary_j7 is not None and summary_alice is not None
    for summary, whole in ((summary_j7, whole_j7), (summary_alice, whole_alice)):
        assert (summary.kind, summary.value, summary.revoked_at, summary.expires_at,
                summary.issued_before) == (whole.kind, whole.value, whole.revoked_at,
                                           whole.expires_at, whole.issued_before)
    assert summary_alice.reason is None
    # ... and ``complete`` (or an admin's read) gives the whole record.
    assert await mirror.complete([summary_j7, summary_alice]) == [whole_j7, whole_alice]
    assert await mirror.get("sub", "alice") == whole_alice
    health = await mirror.health()
    assert health.ok and health.local_ok and health.local["mirror"]["entries"] == 251


async def test_revoke_and_unrevoke_propagate(store: Store,
                                             mirrors: Callable[..., MirrorStore]) -> None:
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    checker = Revoker(mirror, lifetimes=LIFETIMES)
    svc = writer(store)
    await revoke_jti(svc, "stolen")

    async def revoked() -> bool:
        return (await checker.check(Claims(jti="stolen"))).revoked

    await eventually(revoked)
    assert await svc.unrevoke("jti", "stolen") is not None
    await eventually(lambda: not held(mirror, "jti", "stolen"))
    assert not (await checker.check(Claims(jti="stolen"))).revoked


async def test_a_repeated_lookup_that_found_nothing_sees_the_next_write(
        store: Store, mirrors: Callable[..., MirrorStore]) -> None:
    """A token checked again and again (a gateway's case) is answered from what the last
    probe found while the table is unchanged; the first write after it, here a revocation
    of its subject, is seen by the very next check."""
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: settled(mirror))
    checker = Revoker(mirror, lifetimes=LIFETIMES)
    claims = Claims(jti="repeated", sub="dora", iat=time.time() - 60)
    for _ in range(3):
        assert not (await checker.check(claims, details=False)).revoked
    await writer(store).revoke(RevokeRequest("sub", "dora"), actor="t")
    await eventually(lambda: held(mirror, "sub", "dora"))
    assert (await checker.check(claims, details=False)).revoked


def test_absences_hold_only_for_the_table_state_they_were_seen_in() -> None:
    table, other = Table.create(None, 1024), Table.create(None, 1024)
    absences = Absences()
    key = (("jti", "a"), ("sub", "b"))
    absences.remember(table, table.seq, key)
    assert absences.known(table, key)
    assert not absences.known(table, (("jti", "a"),))
    assert not absences.known(other, key)
    table.begin()  # a write under way: the table may already hold the key
    assert not absences.known(table, key)
    table.put(fingerprint("sub", "b"), 1, 2**32 - 2, 0)
    table.end()
    assert not absences.known(table, key)
    absences.remember(table, table.seq, key)
    for i in range(ABSENT_SIZE):  # bounded: a full memory starts again
        absences.remember(table, table.seq, (("jti", f"x{i}"),))
    assert len(absences.keys) <= ABSENT_SIZE and not absences.known(table, key)


async def test_remembered_fingerprints_are_right_and_bounded(
        mirrors: Callable[..., MirrorStore]) -> None:
    """Distinct values (an attacker's, or many users') cannot grow a worker's memory of
    fingerprints; jtis, one token's each, are not kept at all."""
    mirror = mirrors()
    pairs = [("sub", f"user-{i}") for i in range(FP_MEMO_SIZE + 10)] + [("jti", "j1")]
    assert mirror._fingerprints(pairs) == [fingerprint(k, v) for k, v in pairs]
    assert mirror._fingerprints(pairs[:3]) == [fingerprint(k, v) for k, v in pairs[:3]]
    assert 0 < len(mirror._fps) <= FP_MEMO_SIZE
    assert all(kind != "jti" for kind, _ in mirror._fps)


async def test_a_batch_lookup_is_not_remembered(mirrors: Callable[..., MirrorStore]) -> None:
    """Only one token's lookup (a pair per kind) is remembered: a batch check of a thousand
    distinct claims would otherwise keep thousands of values per entry."""
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: settled(mirror))
    batch = [("sub", f"nobody-{i}") for i in range(1000)]
    assert await mirror.get_many(batch) == [None] * 1000
    assert tuple(batch) not in mirror._absent.keys
    token = (("jti", "j"), ("sub", "s"), ("sid", "x"), ("kid", "k"), ("client", "c"))
    assert await mirror.get_many(token) == [None] * 5
    assert token in mirror._absent.keys


async def test_cutoff_kinds_keep_their_rule(store: Store,
                                            mirrors: Callable[..., MirrorStore]) -> None:
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    checker = Revoker(mirror, lifetimes=LIFETIMES)
    now = int(time.time())
    await writer(store).revoke(RevokeRequest("sub", "bob", issued_before=now - 10), actor="t")
    await eventually(lambda: held(mirror, "sub", "bob"))
    assert (await checker.check(Claims(sub="bob", iat=now - 20))).revoked
    assert not (await checker.check(Claims(sub="bob", iat=now - 5))).revoked


async def test_expiry_is_applied_locally_and_swept(store: Store,
                                                   mirrors: Callable[..., MirrorStore]) -> None:
    clock = FakeClock(time.time())
    await revoke_jti(writer(store, clock), "short", ttl_s=10)
    mirror = mirrors(clock=clock)
    await mirror.start()
    await eventually(lambda: settled(mirror))
    assert (await mirror.get_many([("jti", "short")]))[0] is not None
    clock.advance(42)  # ttl 10 + leeway 30 (+1 rounding): the store, on real time, keeps it
    assert (await mirror.get_many([("jti", "short")]))[0] is None
    assert await store.get("jti", "short") is not None
    clock.advance(120)
    assert mirror.keeper is not None and mirror.keeper.table is not None
    assert mirror.keeper.table.used == 1
    mirror.keeper.sweep_now()
    assert mirror.keeper.table.used == 0
    assert not held(mirror, "jti", "short")


async def test_a_long_sweep_waits_longer_before_the_next(
        store: Store, mirrors: Callable[..., MirrorStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeping takes about 1% of a core on average: the next full sweep waits at least
    SWEEP_EVERY_S, and longer the longer this one took."""
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: mirror.in_sync)
    keeper = mirror.keeper
    assert keeper is not None
    keeper.sweep_now()
    assert keeper.sweep_due - time.monotonic() >= mirror_module.SWEEP_EVERY_S - 1
    monkeypatch.setattr(mirror_module, "SWEEP_SHARE", 1e-9)  # any sweep is "long"
    keeper.sweep_now()
    assert keeper.sweep_due - time.monotonic() > 10 * mirror_module.SWEEP_EVERY_S


async def test_out_of_sync_mirror_reads_the_store_instead(
        store: Store, mirrors: Callable[..., MirrorStore]) -> None:
    """Before the first load (and whenever sync is lost) lookups are strict, not stale."""
    await revoke_jti(writer(store), "known")
    mirror = mirrors()
    assert not mirror.in_sync
    assert (await mirror.get_many([("jti", "known")]))[0] is not None
    health = await mirror.health()
    assert health.ok and not health.local_ok
    assert health.local["mirror"]["in_sync"] is False


async def test_writes_and_listings_go_to_the_store(store: Store,
                                                   mirrors: Callable[..., MirrorStore]) -> None:
    mirror = mirrors()
    outcome = await mirror.upsert_many([], at=1)
    assert outcome == []
    svc = Revoker(mirror, lifetimes=LIFETIMES)
    await svc.revoke(RevokeRequest("kid", "k1"), actor="ops")
    assert await store.get("kid", "k1") is not None
    items, cursor = await mirror.scan(actor="ops", limit=10)
    assert [r.value for r in items] == ["k1"] and cursor is None


# -- gaps: the stream changed behind the mirror's back (raw Redis commands) ------------------


@pytest.mark.redis
async def test_trimmed_stream_triggers_a_resync(redis_store: RedisStore, raw: Any,
                                                prefix: str) -> None:
    svc = writer(redis_store)
    await revoke_jti(svc, "before")
    mirror = MirrorStore(redis_store, block_ms=200)
    try:
        assert mirror.keeper is not None
        await mirror.keeper.resync()
        await revoke_jti(svc, "lost-1")
        await revoke_jti(svc, "lost-2")
        await raw.xtrim(f"{prefix}events", maxlen=0)
        await revoke_jti(svc, "after")
        with pytest.raises(Gap):
            mirror.keeper._check_gap(await redis_store.stream_state(), mirror.keeper.position)
        await mirror.start()  # follows from the stale position, finds the gap, reloads
        await eventually(lambda: mirror.keeper is not None and mirror.keeper.resyncs == 2
                         and mirror.in_sync)
        found = await mirror.get_many([("jti", v) for v in ("before", "lost-1", "lost-2",
                                                            "after")])
        assert all(record is not None for record in found)
    finally:
        await mirror.stop()


@pytest.mark.redis
async def test_recreated_stream_triggers_a_resync(redis_store: RedisStore, raw: Any,
                                                  prefix: str) -> None:
    svc = writer(redis_store)
    mirror = MirrorStore(redis_store, block_ms=200)
    try:
        await mirror.start()
        await eventually(lambda: mirror.in_sync)
        await revoke_jti(svc, "one")
        await revoke_jti(svc, "two")
        await eventually(lambda: held(mirror, "jti", "two"))
        await mirror.stop()  # the keeper keeps its table and position
        await raw.delete(f"{prefix}events", f"{prefix}jti:one")
        await revoke_jti(svc, "three")
        await mirror.start()
        await eventually(lambda: mirror.keeper is not None and mirror.keeper.resyncs == 2
                         and not held(mirror, "jti", "one"))
        assert held(mirror, "jti", "three")
    finally:
        await mirror.stop()


# -- wiring: the read path is chosen once, where the store is opened -------------------------


@pytest.mark.parametrize(("mode", "layers"), [("strict", [BatchingStore]),
                                              ("mirror", [MirrorStore, BatchingStore])])
def test_open_store_picks_the_read_path(mode: str, layers: list[type]) -> None:
    settings = Settings.from_env({"REVOKER_STORE_URL": "redis://127.0.0.1:1",
                                  "REVOKER_CHECK_MODE": mode})
    store: Any = open_store(settings)
    for layer in layers:
        assert type(store) is layer
        store = store.inner
    assert type(store) is RedisStore
    memory = open_store(Settings.from_env({"REVOKER_STORE_URL": "memory://"}))
    assert memory.single_process and not hasattr(memory, "inner")


async def mirrored_app(url: str, prefix: str, **env: str) -> TestClient[Any, Any]:
    settings = Settings.from_env({"REVOKER_STORE_URL": url, "REVOKER_API_KEYS": KEYS_ENV,
                                  "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false",
                                  "REVOKER_CHECK_MODE": "mirror", **env})
    client = TestClient(LaneTestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.mark.redis
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
        body = await (await closed.get("/readyz")).json()
        assert body["checks"]["mirror"]["in_sync"] is True
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


async def test_the_snapshot_keeps_cutoffs_and_reads_the_older_full_form(
        store: Store, mirrors: Callable[..., MirrorStore], raw: Any, prefix: str) -> None:
    """What the export hands the keeper: the cutoff of a cutoff kind, and records still in
    the older full form (every field in the JSON, expiry included)."""
    now = int(time.time())
    await writer(store).revoke(RevokeRequest("sub", "carol", issued_before=now - 10,
                                             reason='say "revoked_at":1'), actor="t")
    old = Record("jti", "legacy", revoked_at=now - 5, expires_at=now + 600)
    if type(store) is RedisStore:  # the older form exists only in Redis (this one)
        await raw.set(f"{prefix}jti:legacy", old.to_json(), exat=now + 600)
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: settled(mirror))
    checker = Revoker(mirror, lifetimes=LIFETIMES)
    assert mirror.keeper is not None and mirror.keeper.table is not None
    slot = mirror.keeper.table.find(fingerprint("sub", "carol"))
    assert slot is not None and slot[2] == now - 10
    assert (await checker.check(Claims(sub="carol", iat=now - 20))).revoked
    assert not (await checker.check(Claims(sub="carol", iat=now - 5))).revoked
    if type(store) is RedisStore:
        assert mirror.keeper.table.find(fingerprint("jti", "legacy")) == (now - 5, now + 600,
                                                                           0xFFFFFFFF)


class CountingReads(StoreLayer):
    """The suite's store, counting the lookups that reach it (and failing them on
    demand): what the mirror asks of the store it wraps."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.reads = 0
        self.failing = False

    async def get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        self.reads += 1
        if self.failing:
            raise StoreUnavailable("the store is down (test)")
        return await self.inner.get_many(pairs)


async def test_a_cutoff_hit_is_decided_from_the_table(store: Store) -> None:
    """A subject revoked with a cutoff keeps signing in: its new tokens are checked
    without a store read; a revoked token's answer shows the whole record, or the
    table's summary when the store cannot answer, and is never accepted."""
    svc = writer(store)
    await svc.revoke(RevokeRequest("sub", "bob", reason="stolen laptop"), actor="t")
    whole = await store.get("sub", "bob")
    assert whole is not None and whole.issued_before is not None
    counting = CountingReads(store)
    mirror = MirrorStore(counting, block_ms=200)
    try:
        await mirror.start()
        await eventually(lambda: settled(mirror))
        checker = Revoker(mirror, lifetimes=LIFETIMES)
        before = counting.reads
        fresh = Claims(jti="new", sub="bob", iat=whole.issued_before + 10)
        assert not (await checker.check(fresh)).revoked
        assert not (await checker.check(fresh, details=False)).revoked
        assert not (await checker.check_many([fresh]))[0].revoked
        assert counting.reads == before
        old = Claims(jti="old", sub="bob", iat=whole.issued_before - 10)
        verdict = await checker.check(old, details=False)
        assert verdict.revoked and counting.reads == before
        shown = await checker.check(old)
        assert shown.revoked and shown.matches == [whole]
        assert counting.reads == before + 1
        batch = await checker.check_many([fresh, old, old])
        assert [r.revoked for r in batch] == [False, True, True]
        assert batch[1].matches == [whole] and batch[2].matches == [whole]
        assert counting.reads == before + 2  # one read for every revoked item's details
        counting.failing = True
        degraded = await checker.check(old)
        assert degraded.revoked
        (summary,) = degraded.matches
        assert (summary.kind, summary.value, summary.issued_before) == (
            "sub", "bob", whole.issued_before)
        assert summary.reason is None
    finally:
        await mirror.stop()


async def test_readiness_detail_keeps_the_counts_while_out_of_sync(
        store: Store, mirrors: Callable[..., MirrorStore]) -> None:
    """An operator looking at a mirror out of sync still sees how many entries it holds
    and how many times it loaded: only ``in_sync`` and the error change."""
    await revoke_jti(writer(store), "x")
    mirror = mirrors()
    await mirror.start()
    await eventually(lambda: settled(mirror))
    assert mirror.keeper is not None
    mirror.keeper.stopping = True
    await mirror.stop()
    mirror.keeper._lose("store: test")
    detail = mirror.state()
    assert detail["in_sync"] is False and detail["error"] == "store: test"
    assert detail["entries"] == 1 and detail["resyncs"] == 1
