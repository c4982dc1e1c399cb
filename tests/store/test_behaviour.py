"""One behaviour suite, every backend: the store and service rules of the contract.

Times are real (Redis expires keys on its own clock), so expiries are checked through
``expires_at`` and the server's EXPIRETIME, never by sleeping for a TTL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from revoker import metrics
from revoker.errors import InvalidInput, StoreBusy
from revoker.model import Claims, Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store.base import Store
from revoker.store.redis import RedisStore

LIFETIMES = Lifetimes(max_token_lifetime_s=3600, leeway_s=30)


def service(store: Store) -> Revoker:
    return Revoker(store, lifetimes=LIFETIMES)


async def server_expiry(store: Store, kind: str, value: str) -> int | None:
    """The absolute expiry Redis holds for the key (None on the memory store)."""
    if not isinstance(store, RedisStore):
        return None
    return int(await store.client.expiretime(store.key(kind, value)))


async def test_jti_lives_until_exp_plus_leeway(store: Store) -> None:
    exp = int(time.time()) + 600
    outcome = await service(store).revoke(RevokeRequest("jti", "a1", token_exp=exp), actor="t")
    assert outcome.created and outcome.record is not None
    assert outcome.record.expires_at == exp + 30
    assert (await store.get("jti", "a1")) == outcome.record
    expiry = await server_expiry(store, "jti", "a1")
    assert expiry in (None, exp + 30)


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
    assert await server_expiry(store, kind, "u2") in (None, cutoff + 3630)


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
    assert await server_expiry(store, "jti", "r") in (None, now + 2030)

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
