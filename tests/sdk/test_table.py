"""The mirror's table and event handling, pure: local expiry with an injected clock, the
service's matching rules, out-of-order events, and the memory each record costs."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import pytest

from revoker.model import Claims, Event, Record
from revoker.sdk.client import RevokerClient, record_from
from revoker.sdk.mirror import BUCKET_S, Gap, Mirror, Table
from tests.conftest import FakeClock


def record(kind: str, value: str, *, expires_at: int, issued_before: int | None = None
           ) -> Record:
    return Record(kind=kind, value=value, revoked_at=expires_at - 100, expires_at=expires_at,
                  issued_before=issued_before, reason="r", actor="ops")


def test_records_expire_locally_at_their_expiry(clock: FakeClock) -> None:
    table = Table()
    now = int(clock())
    table.put(record("jti", "a", expires_at=now + 10), clock())
    assert table.match(Claims(jti="a"), clock())
    clock.advance(10)
    assert table.match(Claims(jti="a"), clock()) == []  # the instant Redis drops it
    clock.advance(BUCKET_S * 2)
    assert table.sweep(clock()) == 1 and len(table) == 0


def test_an_already_expired_record_is_not_kept(clock: FakeClock) -> None:
    table = Table()
    table.put(record("sid", "s", expires_at=int(clock()) - 1), clock())
    assert len(table) == 0


def test_cutoff_kinds_match_only_tokens_issued_before(clock: FakeClock) -> None:
    now = int(clock())
    table = Table()
    table.put(record("sub", "alice", expires_at=now + 600, issued_before=now), clock())
    table.put(record("client", "app", expires_at=now + 600, issued_before=now), clock())
    assert table.match(Claims(sub="alice", iat=now - 1), clock())
    assert table.match(Claims(sub="alice", iat=now), clock()) == []
    assert table.match(Claims(sub="alice"), clock())  # no iat: issued before any cutoff
    assert table.match(Claims(client="app", iat=now - 1), clock())
    assert table.match(Claims(sub="bob", iat=now - 1), clock()) == []


def test_every_kind_is_looked_up(clock: FakeClock) -> None:
    now = int(clock())
    table = Table()
    for kind in ("jti", "sid", "kid"):
        table.put(record(kind, "v", expires_at=now + 60), clock())
    hits = table.match(Claims(jti="v", sid="v", kid="v"), clock())
    assert sorted(r.kind for r in hits) == ["jti", "kid", "sid"]


def mirror(clock: FakeClock) -> Mirror:
    return Mirror(RevokerClient("http://127.0.0.1:1"), clock=clock)


def event(event_id: str, kind: str, value: str, expires_at: int,
          type_: str = "revoked") -> Event:
    return Event(id=event_id, type=type_, record=record(kind, value, expires_at=expires_at),
                 at=expires_at - 100)


def test_events_apply_in_order_and_an_older_one_is_a_gap(clock: FakeClock) -> None:
    copy = mirror(clock)
    now = int(clock())
    copy.apply(event("10-0", "jti", "a", now + 60))
    copy.apply(event("11-0", "jti", "a", now + 60, "unrevoked"))
    copy.apply(event("12-0", "sid", "s", now + 60))
    assert copy.position == "12-0" and len(copy) == 1
    with pytest.raises(Gap):
        copy.apply(event("11-5", "jti", "b", now + 60))


def test_lookup_answers_only_while_fresh(clock: FakeClock) -> None:
    ticks = FakeClock(100.0)
    copy = Mirror(RevokerClient("http://127.0.0.1:1"), clock=clock, monotonic=ticks,
                  max_staleness_s=5)
    assert copy.lookup(Claims(jti="a")) is None  # never loaded
    copy.synced = True
    copy.confirm(ticks())
    assert copy.lookup(Claims(jti="a")) == []
    ticks.advance(5.1)
    assert copy.lookup(Claims(jti="a")) is None


def test_memory_per_record_stays_small(clock: FakeClock) -> None:
    """The figure the docs quote: jti records decoded from the service's JSON, as the
    snapshot and the stream deliver them, measured."""
    count = 20_000
    now = int(clock())
    lines = [json.dumps({"kind": "jti", "value": f"{i:032x}", "revoked_at": now,
                         "expires_at": now + 3600, "issued_before": None,
                         "reason": "stolen laptop", "actor": "admin-console"})
             for i in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = Table()
    for line in lines:
        table.put(record_from(json.loads(line)), clock())
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(table) == count
    assert used / count < 450, f"{used / count:.0f} bytes per record"


def test_importing_the_sdk_loads_neither_redis_nor_prometheus() -> None:
    code = ("import sys, revoker.sdk, revoker.client, revoker.sdk.asgi, revoker.sdk.wsgi\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('redis', 'prometheus_client') or m in ('revoker.metrics', 'revoker.service', "
            "'revoker.store', 'revoker.tokens', 'starlette', 'flask', 'django'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
