"""Property test: any sequence of revoke / unrevoke / check / list agrees with a tiny model.

A hypothesis state machine drives the memory store and a real Redis side by side through
the service and compares both with a dict. Values come from a small pool (so that
repeats, merges and unrevokes of live records are common) that includes glob and
escaping characters, which SCAN patterns and Lua pattern matching must not trip on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from revoker.model import CUTOFF_KINDS, KINDS, Claims, Lifetimes, RevokeRequest
from revoker.service import Revoker
from revoker.store.base import Store
from revoker.store.memory import MemoryStore
from revoker.store.redis import RedisStore
from tests.redis_proc import RedisProcess

LIFETIMES = Lifetimes(max_token_lifetime_s=3600, leeway_s=30)
VALUES = st.sampled_from(["a", "b", "*", "x?y", "[z]", "back\\slash", "ключ", "a:b",
                          '"expires_at":1', "%-d"])
KIND = st.sampled_from(KINDS)


@dataclass(frozen=True)
class Entry:
    expires_at: int
    issued_before: int | None


class Model:
    """The contract in a dozen lines: later expiry and later cutoff win."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.entries: dict[tuple[str, str], Entry] = {}

    def revoke(self, kind: str, value: str, ttl: int | None,
               cutoff_age: int | None) -> Entry | None:
        """None: nothing the record could match is still valid, so nothing is stored."""
        cutoff = None
        if kind in CUTOFF_KINDS:
            # the default cutoff covers the whole current second (the contract)
            cutoff = self.now + 1 if cutoff_age is None else self.now - cutoff_age
        bound = (cutoff if cutoff is not None else self.now) + LIFETIMES.horizon_s
        expires = bound if ttl is None else min(bound, self.now + ttl + LIFETIMES.leeway_s)
        if expires <= self.now:
            return None
        old = self.entries.get((kind, value))
        if old is not None:
            expires = max(expires, old.expires_at)
            if cutoff is not None and old.issued_before is not None:
                cutoff = max(cutoff, old.issued_before)
        self.entries[(kind, value)] = Entry(expires, cutoff)
        return self.entries[(kind, value)]

    def revoked(self, claims: Claims) -> bool:
        for kind, value in claims.lookups():
            entry = self.entries.get((kind, value))
            if entry is None:
                continue
            if entry.issued_before is None or claims.iat is None or \
                    claims.iat < entry.issued_before:
                return True
        return False


class StoresAgree(RuleBasedStateMachine):
    """Memory and Redis behind the same service rules, step by step."""

    redis_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = int(time.time())
        self.model = Model(self.now)
        prefix = f"prop{uuid.uuid4().hex[:10]}:"
        self.stores: list[Store] = [
            MemoryStore(prefix=prefix, timeout_s=2.0, events_maxlen=100, clock=time.time),
            RedisStore(self.redis_url, prefix=prefix, timeout_s=2.0, events_maxlen=100)]
        self.services = [Revoker(s, lifetimes=LIFETIMES, clock=lambda: float(self.now))
                         for s in self.stores]
        for store in self.stores:
            self.run(store.open())

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        for store in self.stores:
            self.run(store.close())
        self.loop.close()

    @rule(kind=KIND, value=VALUES, ttl=st.none() | st.integers(60, 7200),
          cutoff_age=st.none() | st.integers(0, 5000))
    def revoke(self, kind: str, value: str, ttl: int | None, cutoff_age: int | None) -> None:
        issued_before = None if cutoff_age is None else self.now - cutoff_age
        request = RevokeRequest(kind, value, ttl_s=ttl, issued_before=issued_before)
        created = (kind, value) not in self.model.entries
        expected = self.model.revoke(kind, value, ttl, cutoff_age)
        for service in self.services:
            outcome = self.run(service.revoke(request, actor="prop"))
            if expected is None:
                assert outcome.record is None and not outcome.created
                continue
            assert outcome.record is not None
            assert outcome.created == created
            assert (outcome.record.expires_at, outcome.record.issued_before) == \
                (expected.expires_at, expected.issued_before)

    @rule(kind=KIND, value=VALUES)
    def unrevoke(self, kind: str, value: str) -> None:
        existed = self.model.entries.pop((kind, value), None) is not None
        for service in self.services:
            assert (self.run(service.unrevoke(kind, value)) is not None) == existed

    @rule(jti=st.none() | VALUES, sub=st.none() | VALUES, sid=st.none() | VALUES,
          kid=st.none() | VALUES, client=st.none() | VALUES,
          iat_age=st.none() | st.sampled_from([-10, 0, 1, 500, 2500, 6000]))
    def check(self, jti: str | None, sub: str | None, sid: str | None, kid: str | None,
              client: str | None, iat_age: int | None) -> None:
        iat = None if iat_age is None else float(self.now - iat_age)
        claims = Claims(jti=jti, sub=sub, sid=sid, kid=kid, client=client, iat=iat)
        expected = self.model.revoked(claims)
        for service in self.services:
            assert self.run(service.check(claims)).revoked == expected

    @rule(kind=st.none() | KIND)
    def listing(self, kind: str | None) -> None:
        expected = sorted(k for k in self.model.entries if kind is None or k[0] == kind)
        for store in self.stores:
            assert sorted((r.kind, r.value) for r in self._list_all(store, kind)) == expected

    def _list_all(self, store: Store, kind: str | None) -> list[Any]:
        records, cursor = self.run(store.scan(kind=kind, cursor=None, limit=7))
        while cursor is not None:
            page, cursor = self.run(store.scan(kind=kind, cursor=cursor, limit=7))
            records += page
        return list(records)

    @invariant()
    def every_record_reads_back_as_modelled(self) -> None:
        pairs = sorted(self.model.entries)
        for store in self.stores:
            found = self.run(store.get_many(pairs)) if pairs else []
            for pair, record in zip(pairs, found, strict=True):
                entry = self.model.entries[pair]
                assert record is not None, pair
                assert (record.expires_at, record.issued_before) == \
                    (entry.expires_at, entry.issued_before)


def test_stores_agree_with_the_model(redis_server: RedisProcess) -> None:
    StoresAgree.redis_url = redis_server.url
    run_state_machine_as_test(StoresAgree, settings=settings(
        max_examples=100, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
