"""The documented Redis layout, read and written with raw Redis commands as operators and
Lua-scripting gateways do: ``{prefix}{kind}:{value}`` holds compact JSON with an absolute
expiry equal to ``expires_at``; ``{prefix}events`` is a stream of full records; values in
the older full form keep being read and merged correctly."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from revoker.model import Lifetimes, Record, RevokeRequest
from revoker.service import Revoker
from revoker.store.redis import RedisStore

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_store: RedisStore) -> RedisStore:
    """Redis alone: the layout is Redis's."""
    return redis_store


def old_form(record: Record) -> str:
    """What earlier releases stored: every field, nulls included."""
    return json.dumps(record.to_dict())


async def test_a_record_is_compact_json_expiring_at_expires_at(store: RedisStore, raw: Any,
                                                               prefix: str) -> None:
    svc = Revoker(store, lifetimes=Lifetimes(3600, 30))
    exp = int(time.time()) + 600
    record = (await svc.revoke(RevokeRequest("jti", "j/1", token_exp=exp), actor="ops")).record
    assert record is not None
    key = f"{prefix}jti:j/1"
    assert json.loads(await raw.get(key)) == {"revoked_at": record.revoked_at, "actor": "ops"}
    assert await raw.expiretime(key) == exp + 30
    assert await raw.exists(key) == 1
    sub = (await svc.revoke(RevokeRequest("sub", "u", reason="left"), actor=None)).record
    assert sub is not None
    assert json.loads(await raw.get(f"{prefix}sub:u")) == {
        "revoked_at": sub.revoked_at, "issued_before": sub.issued_before, "reason": "left"}
    entries = await raw.xrange(f"{prefix}events")
    assert [Record.from_json(fields[b"record"]) for _, fields in entries] == [record, sub]


async def test_old_full_form_values_are_read_listed_and_removed(store: RedisStore, raw: Any,
                                                                prefix: str) -> None:
    now = int(time.time())
    old = Record("jti", "legacy", revoked_at=now - 50, expires_at=now + 900,
                 reason="old", actor="v0")
    await raw.set(f"{prefix}jti:legacy", old_form(old), exat=old.expires_at)
    await store.upsert(Record("jti", "modern", revoked_at=now, expires_at=now + 300), at=now)
    found = await store.get_many([("jti", "legacy"), ("jti", "modern"), ("jti", "none")])
    assert found[0] == old
    assert found[1] is not None and found[1].expires_at == now + 300
    assert found[2] is None
    listed, _ = await store.scan(limit=10)
    assert sorted(r.value for r in listed) == ["legacy", "modern"]
    assert await store.delete("jti", "legacy", at=now) == old
    events = await store.events(after=None, limit=10)
    assert events[-1].type == "unrevoked" and events[-1].record == old


async def test_merging_into_an_old_form_value_keeps_the_guarantee(store: RedisStore, raw: Any,
                                                                  prefix: str) -> None:
    now = int(time.time())
    old = Record("sub", "legacy", revoked_at=now - 50, expires_at=now + 900,
                 issued_before=now - 60, reason="first", actor="v0")
    key = f"{prefix}sub:legacy"
    await raw.set(key, old_form(old), exat=old.expires_at)
    shorter = Record("sub", "legacy", revoked_at=now, expires_at=now + 100,
                     issued_before=now - 70, actor="later")
    merged = (await store.upsert(shorter, at=now)).record
    assert merged == old
    assert await raw.expiretime(key) == now + 900
    assert json.loads(await raw.get(key)) == {"revoked_at": now - 50,
                                              "issued_before": now - 60,
                                              "reason": "first", "actor": "v0"}
    longer = Record("sub", "legacy", revoked_at=now, expires_at=now + 2000,
                    issued_before=now - 10, actor="later")
    merged = (await store.upsert(longer, at=now)).record
    assert (merged.expires_at, merged.issued_before, merged.actor) == (now + 2000, now - 10, "v0")
    assert await raw.expiretime(key) == now + 2000


async def test_the_merge_reads_the_keys_own_expiry(store: RedisStore, raw: Any,
                                                   prefix: str) -> None:
    """A compact value says nothing of its expiry: the merge reads EXPIRETIME."""
    now = int(time.time())
    key = f"{prefix}jti:kept"
    await raw.set(key, json.dumps({"revoked_at": now}), exat=now + 5000)
    outcome = await store.upsert(Record("jti", "kept", revoked_at=now, expires_at=now + 60,
                                        actor="x"), at=now)
    assert not outcome.created and outcome.record.expires_at == now + 5000
    assert outcome.record.actor is None
    assert await raw.expiretime(key) == now + 5000


async def test_scripts_survive_a_script_flush(store: RedisStore, raw: Any) -> None:
    """After a restart or failover Redis may not know the scripts: writes reload them."""
    svc = Revoker(store, lifetimes=Lifetimes(3600, 30))
    await raw.script_flush()
    assert (await svc.revoke(RevokeRequest("jti", "flushed"), actor=None)).created
    await raw.script_flush()
    assert await svc.unrevoke("jti", "flushed") is not None
    assert await store.get("jti", "flushed") is None


async def test_replay_guards_and_foreign_keys_are_not_records(store: RedisStore, raw: Any,
                                                              prefix: str) -> None:
    until = int(time.time()) + 60
    assert await store.remember_once("bcl:iss:1", until)
    assert await raw.exists(f"{prefix}bcl:iss:1") == 1
    await raw.set(f"{prefix}other-thing", "x", ex=60)
    await raw.set(f"{prefix}jti:", "x", ex=60)
    assert await store.scan(limit=100) == ([], None)
