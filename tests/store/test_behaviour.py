"""One behaviour suite, every backend: the store and service rules of the contract.

Every test here runs on each param of the ``store`` fixture (tests/store/conftest.py) and
goes through public interfaces only; the Redis key layout has its own test module
(test_layout.py). Times are real (Redis expires keys on its own clock), so expiries are
checked through ``expires_at``, never by sleeping for a TTL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from revoker import metrics
from revoker.errors import InvalidInput, NotDurable, StoreBusy
from revoker.model import Claims, Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store.base import Store
from revoker.store.redis import RedisStore
from tests.store.conftest import REPLICATED, MakeStore, record

LIFETIMES = Lifetimes(max_token_lifetime_s=3600, leeway_s=30)


def service(store: Store) -> Revoker:
    return Revoker(store, lifetimes=LIFETIMES)


async def stored_expiry(store: Store, kind: str, value: str) -> int:
    """The expiry a fresh read of the record reports."""
    found = await store.get(kind, value)
    assert found is not None
    return found.expires_at


async def test_jti_lives_until_exp_plus_leeway(store: Store) -> None:
    exp = int(time.time()) + 600
    outcome = await service(store).revoke(RevokeRequest("jti", "a1", token_exp=exp), actor="t")
    assert outcome.created and outcome.record is not None
    assert outcome.record.expires_at == exp + 30
    assert (await store.get("jti", "a1")) == outcome.record
    assert await stored_expiry(store, "jti", "a1") == exp + 30


async def test_what_a_new_revocation_answers_is_what_is_stored(store: Store) -> None:
    """Every field a record can carry, non-ASCII text included: the answer to a revoke that
    stored a new record (built from the request, not read back) equals what a read finds,
    one at a time and in a batch."""
    now = int(time.time())
    requests = [RevokeRequest("sub", "user-é", ttl_s=900, issued_before=now - 5,
                              reason="laptop stolen — ticket 42"),
                RevokeRequest("client", "svc-1", ttl_s=60, issued_before=now),
                RevokeRequest("jti", "plain-1", token_exp=now + 120)]
    single = await service(store).revoke(requests[0], actor="support-ü")
    batch = await service(store).revoke_many(requests[1:], actor=None)
    for outcome in (single, *batch):
        assert not isinstance(outcome, InvalidInput)
        assert outcome.created and outcome.record is not None
        assert await store.get(outcome.record.kind, outcome.record.value) == outcome.record
    assert single.record is not None
    assert (single.record.reason, single.record.actor) == ("laptop stolen — ticket 42",
                                                          "support-ü")


async def test_jti_without_exp_lives_max_lifetime_plus_leeway(store: Store) -> None:
    now = int(time.time())
    record = (await service(store).revoke(RevokeRequest("jti", "no-exp"), actor=None)).record
    assert record is not None
    assert now + 3630 <= record.expires_at <= int(time.time()) + 3630


async def test_ttl_is_remaining_lifetime(store: Store) -> None:
    now = time.time()
    record = (await service(store).revoke(RevokeRequest("jti", "t", ttl_s=100), actor=None)).record
    assert record is not None
    assert int(now) + 130 <= record.expires_at <= int(now) + 132


async def test_expired_token_stores_nothing(store: Store) -> None:
    exp = int(time.time()) - 31
    outcome = await service(store).revoke(RevokeRequest("jti", "old", token_exp=exp), actor=None)
    assert not outcome.stored
    assert await store.get("jti", "old") is None
    assert await store.events(after=None, limit=10) == []


async def test_recently_expired_token_within_leeway_is_stored(store: Store) -> None:
    exp = int(time.time()) - 5
    outcome = await service(store).revoke(RevokeRequest("jti", "grace", token_exp=exp),
                                          actor=None)
    assert outcome.stored and outcome.record is not None
    assert outcome.record.expires_at == exp + 30


async def test_sid_and_kid_default_lifetime(store: Store) -> None:
    svc = service(store)
    for kind in ("sid", "kid"):
        before = int(time.time())
        record = (await svc.revoke(RevokeRequest(kind, "v"), actor=None)).record
        assert record is not None and record.issued_before is None
        assert before + 3630 <= record.expires_at <= int(time.time()) + 3630


@pytest.mark.parametrize("kind", ["sub", "client"])
async def test_cutoff_kinds_default_to_now(store: Store, kind: str) -> None:
    before = int(time.time())
    record = (await service(store).revoke(RevokeRequest(kind, "u1"), actor=None)).record
    assert record is not None and record.issued_before is not None
    assert before + 1 <= record.issued_before <= int(time.time()) + 1
    assert record.expires_at == record.issued_before + 3630


@pytest.mark.parametrize("kind", ["sub", "client"])
async def test_cutoff_in_the_past_bounds_the_lifetime(store: Store, kind: str) -> None:
    cutoff = int(time.time()) - 600
    request = RevokeRequest(kind, "u2", issued_before=cutoff)
    record = (await service(store).revoke(request, actor=None)).record
    assert record is not None
    assert record.issued_before == cutoff
    assert record.expires_at == cutoff + 3630
    assert await stored_expiry(store, kind, "u2") == cutoff + 3630


async def test_cutoff_older_than_any_token_stores_nothing(store: Store) -> None:
    request = RevokeRequest("sub", "ancient", issued_before=int(time.time()) - 3631)
    assert not (await service(store).revoke(request, actor=None)).stored
    assert await store.get("sub", "ancient") is None


async def test_cutoff_in_the_future_is_refused(store: Store) -> None:
    request = RevokeRequest("sub", "future", issued_before=int(time.time()) + 60)
    with pytest.raises(InvalidInput):
        await service(store).revoke(request, actor=None)
    assert await store.get("sub", "future") is None


async def test_iat_rules_for_cutoff_kinds(store: Store) -> None:
    svc = service(store)
    cutoff = int(time.time()) - 100
    await svc.revoke(RevokeRequest("sub", "alice", issued_before=cutoff), actor=None)
    await svc.revoke(RevokeRequest("client", "app", issued_before=cutoff), actor=None)
    assert (await svc.check(Claims(sub="alice", iat=cutoff - 1))).revoked
    assert not (await svc.check(Claims(sub="alice", iat=cutoff))).revoked
    assert not (await svc.check(Claims(sub="alice", iat=cutoff + 50))).revoked
    assert (await svc.check(Claims(sub="alice", iat=None))).revoked
    assert (await svc.check(Claims(client="app", iat=cutoff - 10))).revoked
    assert not (await svc.check(Claims(client="app", iat=cutoff + 10))).revoked


async def test_check_returns_every_match(store: Store) -> None:
    svc = service(store)
    for kind, value in [("jti", "j"), ("sub", "s"), ("sid", "x"), ("kid", "k"), ("client", "c")]:
        await svc.revoke(RevokeRequest(kind, value), actor=None)
    result = await svc.check(Claims(jti="j", sub="s", sid="x", kid="k", client="c",
                                    iat=time.time() - 10))
    assert result.revoked
    assert [m.kind for m in result.matches] == ["jti", "sub", "sid", "kid", "client"]
    assert not (await svc.check(Claims(jti="other", sub="other"))).revoked


async def test_revoking_again_keeps_the_later_expiry_and_cutoff(store: Store) -> None:
    svc = service(store)
    now = int(time.time())
    first = await svc.revoke(RevokeRequest("jti", "r", token_exp=now + 1000, reason="first"),
                             actor="a")
    again = await svc.revoke(RevokeRequest("jti", "r", token_exp=now + 100), actor="b")
    assert first.created and not again.created
    assert again.record is not None and again.record.expires_at == now + 1030
    assert again.record.reason == "first" and again.record.actor == "a"
    later = await svc.revoke(RevokeRequest("jti", "r", token_exp=now + 2000), actor="b")
    assert later.record is not None and later.record.expires_at == now + 2030
    assert await stored_expiry(store, "jti", "r") == now + 2030

    await svc.revoke(RevokeRequest("sub", "u", issued_before=now - 50), actor=None)
    newer = await svc.revoke(RevokeRequest("sub", "u", issued_before=now - 100), actor=None)
    assert newer.record is not None and newer.record.issued_before == now - 50


async def test_concurrent_revokes_of_one_key_keep_the_maximum(store: Store) -> None:
    svc = service(store)
    now = int(time.time())
    exps = [now + 100 + 37 * i for i in range(50)]
    await asyncio.gather(*(svc.revoke(RevokeRequest("jti", "race", token_exp=e), actor=None)
                           for e in reversed(exps)))
    record = await store.get("jti", "race")
    assert record is not None and record.expires_at == max(exps) + 30
    created = [e for e in await store.events(after=None, limit=100)]
    assert len(created) == 50


async def test_events_are_appended_for_revoke_and_unrevoke(store: Store) -> None:
    svc = service(store)
    await svc.revoke(RevokeRequest("jti", "e1"), actor="x")
    removed = await svc.unrevoke("jti", "e1")
    assert removed is not None and removed.value == "e1"
    assert await svc.unrevoke("jti", "e1") is None
    events = await store.events(after=None, limit=10)
    assert [(e.type, e.record.value) for e in events] == [("revoked", "e1"), ("unrevoked", "e1")]
    assert (await store.events(after=events[0].id, limit=10)) == events[1:]
    assert await store.last_event_id() == events[-1].id
    assert await store.get("jti", "e1") is None


async def test_events_page_after_a_position(store: Store) -> None:
    await store.upsert(record("jti", "p1"), at=10)
    await store.upsert(record("sid", "p2"), at=11)
    events = await store.events(after=None, limit=10)
    assert [e.record.value for e in events] == ["p1", "p2"]
    assert [e.id for e in await store.events(after=events[0].id, limit=10)] == [events[1].id]


async def test_blocking_event_read_wakes_on_append(store: Store) -> None:
    svc = service(store)
    last = await store.last_event_id()
    tail = store.open_tail()
    try:
        reader = asyncio.create_task(tail.read(after=last or "0-0", limit=10, block_ms=2000))
        await asyncio.sleep(0.05)
        await svc.revoke(RevokeRequest("jti", "wake"), actor=None)
        events = await asyncio.wait_for(reader, 3)
        assert [e.record.value for e in events] == ["wake"]
    finally:
        await tail.close()


async def test_scan_pages_cover_every_record_once(store: Store) -> None:
    svc = service(store)
    values = {f"v{i:03d}" for i in range(250)}
    await svc.revoke_many([RevokeRequest("jti", v) for v in values], actor=None)
    await svc.revoke(RevokeRequest("sub", "someone"), actor=None)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = await store.scan(kind="jti", cursor=cursor, limit=40)
        assert len(items) <= 40
        seen += [r.value for r in items]
        if cursor is None:
            break
    assert set(seen) == values and len(seen) == len(values)
    everything, _ = await store.scan(kind=None, cursor=None, limit=1000)
    assert {r.kind for r in everything} == {"jti", "sub"}


async def test_a_record_removed_between_pages_never_hides_another(store: Store) -> None:
    """Records delivered by one page go away (unrevoked; expiry does the same) before the
    next page: every record present throughout is still listed. A page that stops inside
    a SCAN batch must resume after the last key it took, not after so many keys."""
    svc = service(store)
    values = [f"v{i:03d}" for i in range(120)]
    await svc.revoke_many([RevokeRequest("jti", v) for v in values], actor=None)
    seen: list[str] = []
    gone: set[str] = set()
    cursor = None
    while True:
        items, cursor = await store.scan(kind="jti", cursor=cursor, limit=7)
        seen += [r.value for r in items]
        for delivered in items[:2]:
            assert await svc.unrevoke("jti", delivered.value) is not None
            gone.add(delivered.value)
        if cursor is None:
            break
    assert set(values) - gone <= set(seen)


async def test_bad_cursor_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.scan(kind=None, cursor="%%%not-a-cursor", limit=10)


async def test_record_round_trips_unicode_and_reason(store: Store) -> None:
    value = "ünï/çødé:with:colons \"quoted\" \\ back"
    record = (await service(store).revoke(
        RevokeRequest("sub", value, reason="laptop \"stolen\""), actor="k")).record
    assert record is not None
    assert await store.get("sub", value) == record
    again = await service(store).revoke(RevokeRequest("sub", value), actor="k")
    assert again.record is not None and again.record.reason == 'laptop "stolen"'


async def test_get_many_keeps_order_and_gaps(store: Store) -> None:
    await service(store).revoke(RevokeRequest("sid", "s2"), actor=None)
    found = await store.get_many([("sid", "s1"), ("sid", "s2"), ("jti", "s2")])
    assert [None if r is None else r.value for r in found] == [None, "s2", None]
    assert isinstance(found[1], Record)


BAD_CURSORS = ["99999999999999999999.0", "\u0661.0", "1.", ".1", "1.2.3.4", "%%%", "a" * 2000]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_malformed_cursor_is_refused_before_any_store_call(store: Store,
                                                                 cursor: str) -> None:
    before = _scan_activity()
    with pytest.raises(InvalidInput):
        await store.scan(kind=None, cursor=cursor, limit=10)
    assert _scan_activity() == before, "the cursor reached the store"


def _scan_activity() -> tuple[float, float]:
    """(scan calls timed, scan errors counted) so far in this process."""
    metrics.flush()
    labels = {"operation": "scan"}
    return (REGISTRY.get_sample_value("revoker_store_operation_duration_seconds_count",
                                      labels) or 0.0,
            REGISTRY.get_sample_value("revoker_store_errors_total", labels) or 0.0)


@pytest.mark.redis
async def test_an_exhausted_hot_lane_is_busy_and_never_fails_open(redis_server: Any,
                                                                  prefix: str) -> None:
    store = RedisStore(redis_server.url, prefix=prefix, timeout_s=0.2, events_maxlen=100,
                       pool_size=2)
    await store.open()
    try:
        deadline = asyncio.get_running_loop().time() + 1
        for _ in range(2):  # every hot connection held, as by checks stuck in flight
            await store.hot.acquire(deadline)
        with pytest.raises(StoreBusy):
            await store.get("jti", "x")
        svc = Revoker(store, lifetimes=Lifetimes(3600, 30), fail_mode="open")
        with pytest.raises(StoreBusy):
            await svc.check_jti("x")
        assert (await store.events(after=None, limit=1)) is not None  # the cold lane works
        assert (await store.health()).ok
        store.hot.release()
        assert await store.get("jti", "x") is None
    finally:
        store.hot.release()
        await store.close()


# -- merges, ordering and listings across slots (every key may be on another server) --------


async def test_upsert_merges_keeping_later_expiry_and_cutoff(store: Store) -> None:
    now = int(time.time())
    first = await store.upsert(record("sub", "alice", expires_in=600, issued_before=now - 100),
                               at=1)
    assert first.created
    later = record("sub", "alice", expires_in=900, issued_before=now - 10, actor="other",
                   reason=None)
    merged = await store.upsert(later, at=2)
    assert not merged.created
    assert merged.record.expires_at == later.expires_at
    assert merged.record.issued_before == later.issued_before
    assert (merged.record.actor, merged.record.reason) == ("suite", "test")
    shorter = await store.upsert(record("sub", "alice", expires_in=60, issued_before=1), at=3)
    assert shorter.record.expires_at == later.expires_at
    assert shorter.record.issued_before == later.issued_before
    assert await store.get("sub", "alice") == shorter.record


async def test_concurrent_upserts_keep_the_maximum(store: Store) -> None:
    expiries = list(range(100, 3100, 100))
    await asyncio.gather(*(store.upsert(record("jti", "race", expires_in=e), at=1)
                           for e in reversed(expiries)))
    stored = await store.get("jti", "race")
    assert stored is not None
    assert stored.expires_at >= int(time.time()) + max(expiries) - 5


async def test_get_many_across_slots_keeps_order(store: Store) -> None:
    present = [record(kind, f"{kind}-{i}") for i in range(40)
               for kind in ("jti", "sub", "sid", "kid", "client")]
    await store.upsert_many(present, at=1)
    pairs: list[tuple[str, str]] = []
    for i, rec in enumerate(present):
        pairs.append((rec.kind, rec.value))
        if i % 3 == 0:
            pairs.append(("jti", f"missing-{i}"))
    found = await store.get_many(pairs)
    assert len(found) == len(pairs)
    for (kind, value), item in zip(pairs, found, strict=True):
        if value.startswith("missing-"):
            assert item is None
        else:
            assert item is not None and (item.kind, item.value) == (kind, value)


async def test_delete_removes_and_reports_absence(store: Store) -> None:
    await store.upsert(record("kid", "k1"), at=1)
    removed = await store.delete("kid", "k1", at=2)
    assert removed is not None and (removed.kind, removed.value) == ("kid", "k1")
    assert await store.get("kid", "k1") is None
    assert await store.delete("kid", "k1", at=3) is None


async def test_events_carry_the_full_record(store: Store) -> None:
    written = (await store.upsert(record("sub", "full", issued_before=int(time.time()) - 5),
                                  at=10)).record
    await store.delete("sub", "full", at=11)
    events = await store.events(after=None, limit=10)
    assert [(e.type, e.at) for e in events] == [("revoked", 10), ("unrevoked", 11)]
    assert events[0].record == written
    assert events[1].record == written


async def test_service_checks_every_kind_across_slots(store: Store) -> None:
    svc = service(store)
    now = int(time.time())
    await store.upsert_many([record("sid", "session-9"),
                             record("client", "app-3", issued_before=now)], at=1)
    results = await svc.check_many([
        Claims(jti="x", sub="nobody", sid="session-9", kid="k", client="other", iat=now - 5),
        Claims(jti="y", sub="nobody", sid="s", kid="k", client="app-3", iat=now - 5),
        Claims(jti="z", sub="nobody", sid="s", kid="k", client="app-3", iat=now + 5),
    ])
    assert [r.revoked for r in results] == [True, True, False]
    assert [m.kind for m in results[0].matches] == ["sid"]


async def test_remember_once_is_true_only_the_first_time(store: Store) -> None:
    until = int(time.time()) + 60
    outcomes = await asyncio.gather(*(store.remember_once("bcl:iss:jti-1", until)
                                      for _ in range(5)))
    assert sorted(outcomes) == [False] * 4 + [True]
    assert await store.remember_once("set:iss:jti-1", until)
    assert await store.get("jti", "jti-1") is None, "a replay guard is not a revocation"
    items, _ = await store.scan(limit=100)
    assert items == [], "replay guards are not listed as records"


async def test_health_answers(store: Store) -> None:
    health = await store.health()
    assert health.ok and health.local_ok
    assert health.detail["backend"]


@pytest.mark.parametrize("make_store", REPLICATED, indirect=True)
async def test_wait_for_one_replica_acknowledges(make_store: MakeStore) -> None:
    store = await make_store(wait_replicas=1)
    outcome = await store.upsert(record("jti", "durable"), at=1)
    assert outcome.created
    assert (await store.delete("jti", "durable", at=2)) is not None


@pytest.mark.parametrize("make_store", REPLICATED, indirect=True)
async def test_wait_for_missing_replicas_is_not_durable(make_store: MakeStore) -> None:
    store = await make_store(wait_replicas=3, wait_timeout_s=0.05)
    with pytest.raises(NotDurable):
        await store.upsert(record("jti", "not-durable"), at=1)
    health = await store.health()
    assert any("REDIS_WAIT_REPLICAS=3" in w for w in health.warnings)


@pytest.mark.parametrize("make_store", REPLICATED, indirect=True)
async def test_health_reports_persistence_and_replicas(make_store: MakeStore) -> None:
    health = await (await make_store()).health()
    assert health.ok
    text = repr(health.detail)
    assert "aof_enabled" in text and "connected_replicas" in text


# -- search: listings by kind, value prefix and actor ----------------------------------------


async def _list_all(store: Store, *, limit: int, **filters: Any) -> list[Record]:
    """Every page, following cursors; a cursor is never handed back twice."""
    found: list[Record] = []
    cursor: str | None = None
    seen_cursors: set[str] = set()
    while True:
        items, cursor = await store.scan(cursor=cursor, limit=limit, **filters)
        assert len(items) <= limit
        found += items
        if cursor is None:
            return found
        assert cursor not in seen_cursors
        seen_cursors.add(cursor)


GLOBBY = ["a*b1", "a*b2", "axb", "a?c", "[x]1", "[x]2", "x]", "back\\slash", "back\\slosh",
          "plain"]


async def test_prefix_matches_the_start_of_the_value_literally(store: Store) -> None:
    await store.upsert_many([record("jti", v) for v in GLOBBY], at=1)
    await store.upsert_many([record("sub", v) for v in ("a*b9", "plainly")], at=1)

    async def values(**filters: Any) -> list[str]:
        return sorted(r.value for r in await _list_all(store, limit=3, **filters))

    assert await values(kind="jti", prefix="a*b") == ["a*b1", "a*b2"]
    assert await values(kind="jti", prefix="a?") == ["a?c"]
    assert await values(kind="jti", prefix="[x]") == ["[x]1", "[x]2"]
    assert await values(kind="jti", prefix="back\\sl") == ["back\\slash", "back\\slosh"]
    assert await values(prefix="a*b") == ["a*b1", "a*b2", "a*b9"]
    assert await values(prefix="plain") == ["plain", "plainly"]
    assert await values(kind="sid", prefix="a") == []
    assert len(await values()) == len(GLOBBY) + 2


async def test_actor_is_an_exact_match_and_pages_cover_each_record_once(store: Store) -> None:
    await store.upsert_many([record("jti", f"v{i:03d}", actor="alice" if i % 7 == 0 else "bob")
                             for i in range(120)], at=1)
    await store.upsert(record("jti", "anonymous", actor=None), at=1)
    alice = await _list_all(store, limit=4, actor="alice")
    assert sorted(r.value for r in alice) == [f"v{i:03d}" for i in range(0, 120, 7)]
    assert await _list_all(store, limit=4, actor="alic") == []
    both = await _list_all(store, limit=5, kind="jti", prefix="v01", actor="bob")
    assert sorted(r.value for r in both) == [f"v01{i}" for i in range(10) if (10 + i) % 7]


async def test_a_listing_that_matches_nothing_still_ends(store: Store) -> None:
    await store.upsert_many([record("jti", f"n{i}") for i in range(50)], at=1)
    assert await _list_all(store, limit=2, actor="nobody") == []
    assert await _list_all(store, limit=2, kind="kid") == []


# -- search: the audit log, filtered, paging without gaps or repeats -------------------------


async def _all_events(store: Store, *, limit: int, **filters: Any) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    for _ in range(1000):
        page = await store.search_events(after=after, limit=limit, **filters)
        assert len(page.events) <= limit
        ids += [e.id for e in page.events]
        if page.next == after:
            return ids
        after = page.next
    raise AssertionError("paging did not end")


async def test_event_filters_are_exact_and_pages_never_miss_or_repeat(store: Store) -> None:
    for i in range(30):
        kind = ("jti", "sid")[i % 2]
        await store.upsert(record(kind, f"e{i % 5}", actor=("ann", "ben", "cy")[i % 3]), at=i)
    await store.delete("jti", "e0", at=99)
    everything = await store.events(after=None, limit=1000)
    assert len(everything) == 31
    cases: list[dict[str, Any]] = [{"kind": "jti"}, {"value": "e0"}, {"actor": "ben"},
                                   {"kind": "sid", "actor": "cy"}, {"value": "e"},
                                   {"kind": "jti", "value": "e0", "actor": "ann"}]
    for filters in cases:
        expected = [e.id for e in everything if all(
            getattr(e.record, name) == wanted for name, wanted in filters.items())]
        for limit in (1, 2, 100):
            assert await _all_events(store, limit=limit, **filters) == expected, filters


async def test_next_is_the_last_event_examined(store: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Work per page is bounded: a page that examined its share and found nothing still
    moves ``next`` past what it examined, and a caught-up page keeps ``after``."""
    from revoker.store import base

    monkeypatch.setattr(base, "EVENTS_EXAMINED_PER_PAGE", 4)
    for i in range(10):
        await store.upsert(record("jti", f"m{i}"), at=i)
    ids = [e.id for e in await store.events(after=None, limit=100)]
    page = await store.search_events(after=None, limit=2, actor="nobody")
    assert page.events == [] and page.next == ids[3]
    page = await store.search_events(after=ids[3], limit=2, actor="nobody")
    assert page.events == [] and page.next == ids[7]
    page = await store.search_events(after=ids[7], limit=5, value="m9")
    assert [e.id for e in page.events] == [ids[9]] and page.next == ids[9]
    page = await store.search_events(after=ids[9], limit=5, value="m9")
    assert page.events == [] and page.next == ids[9]
    unfiltered = await store.search_events(after=None, limit=3)
    assert [e.id for e in unfiltered.events] == ids[:3] and unfiltered.next == ids[2]


async def test_malformed_event_position_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.search_events(after="not-an-id", limit=10)


async def test_service_exposes_the_filters(store: Store) -> None:
    svc = service(store)
    await svc.revoke(RevokeRequest("jti", "x*1"), actor="ops")
    await svc.revoke(RevokeRequest("jti", "x*2"), actor="dev")
    items, cursor = await svc.list_records(kind="jti", prefix="x*", actor="ops", limit=10)
    assert [r.value for r in items] == ["x*1"] and cursor is None
    page = await svc.search_events(after=None, limit=10, actor="dev")
    assert [e.record.value for e in page.events] == ["x*2"]
    assert (await svc.health()).ok


async def test_service_replay_guard(store: Store) -> None:
    svc = service(store)
    until = int(time.time()) + 60
    assert await svc.remember_once("bcl", "issuer-a", "t-1", until)
    assert not await svc.remember_once("bcl", "issuer-a", "t-1", until)
    assert await svc.remember_once("bcl", "issuer-b", "t-1", until)
    assert await svc.remember_once("set", "issuer-a", "t-1", until)
    with pytest.raises(ValueError, match="unknown replay tag"):
        await svc.remember_once("jti", "issuer-a", "t-1", until)
