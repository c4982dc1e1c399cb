"""Revoke, check and unrevoke: the contract's rules applied to a store. No HTTP here.

Fail mode lives here too, because "what does a check answer when the store cannot" is a
rule of the service, not of any one endpoint. Only an unreachable store fails open
(``StoreUnavailable``: connection refused or reset, no answer in time); local overload
(``StoreBusy``) and errors Redis reported (``StoreError``) always fail closed, so nothing a
client can do to this process makes a revoked token acceptable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from revoker import metrics
from revoker.errors import InvalidInput, StoreError, StoreUnavailable
from revoker.model import Claims, Event, Lifetimes, Record, RevokeRequest, build_record, matching
from revoker.store import Store, StoreHealth
from revoker.store.base import EventPage
from revoker.store.feed import EventFeed, Subscription
from revoker.store.keys import replay_suffix


@dataclass(frozen=True, slots=True)
class Revoked:
    """Outcome of one revoke: ``record`` is None when nothing needed storing."""

    request: RevokeRequest
    record: Record | None
    created: bool

    @property
    def stored(self) -> bool:
        return self.record is not None


@dataclass(frozen=True, slots=True)
class CheckResult:
    revoked: bool
    matches: list[Record] = field(default_factory=list)
    #: True when the store failed and fail mode ``open`` accepted anyway.
    degraded: bool = False


class Revoker:
    """The service: one per process, shared by every handler.

    How checks read (batched per loop turn, or from a local mirror) is the store's
    business, decided where it is opened (``revoker.store.open_store``)."""

    def __init__(self, store: Store, *, lifetimes: Lifetimes, fail_mode: str = "closed",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lifetimes = lifetimes
        self.fail_mode = fail_mode
        self.clock = clock
        #: The one tail of the events stream that every event stream of this process shares.
        self.feed = EventFeed(store)

    async def revoke(self, request: RevokeRequest, *, actor: str | None,
                     source: str = "api") -> Revoked:
        outcome = (await self.revoke_many([request], actor=actor, source=source))[0]
        if isinstance(outcome, InvalidInput):
            raise outcome
        return outcome

    async def revoke_many(self, requests: Sequence[RevokeRequest], *, actor: str | None,
                          source: str = "api") -> list[Revoked | InvalidInput]:
        """One store round trip for the whole batch. A request that breaks a rule of the
        clock (a cutoff in the future) fails alone; expired requests store nothing."""
        now = self.clock()
        built = [self._build(r, now=now, actor=actor) for r in requests]
        to_store = [record for record in built if isinstance(record, Record)]
        stored = iter(await self.store.upsert_many(to_store, at=int(now)))
        results: list[Revoked | InvalidInput] = []
        for request, record in zip(requests, built, strict=True):
            if isinstance(record, InvalidInput):
                results.append(record)
            elif record is None:
                results.append(Revoked(request, None, created=False))
            else:
                outcome = next(stored)
                _revocations(request.kind, source).inc()
                results.append(Revoked(request, outcome.record, outcome.created))
        return results

    def _build(self, request: RevokeRequest, *, now: float,
               actor: str | None) -> Record | InvalidInput | None:
        try:
            return build_record(request, now=now, lifetimes=self.lifetimes, actor=actor)
        except InvalidInput as exc:
            return exc

    async def check(self, claims: Claims, *, details: bool = True) -> CheckResult:
        """The hot path (one token): ``check_many``'s rules without the batch bookkeeping.
        ``details=False`` when only the verdict is shown (forward-auth): the matches may
        then lack what the store's summary omits (see ``Store.complete``)."""
        pairs = claims.lookups()
        try:
            found = await self.store.get_many(pairs) if pairs else []
        except StoreError as exc:
            return self._unknown(exc, 1)[0]
        matches = matching(claims, found)
        if not matches:
            _CHECKS_OK.inc()
            return CheckResult(revoked=False)
        _CHECKS_REVOKED.inc()
        if details:
            matches = await self.store.complete(matches)
        return CheckResult(revoked=True, matches=matches)

    async def check_jti(self, jti: str) -> CheckResult:
        """``check`` of a bare jti, the question gateways ask most: no claims to build, and
        a jti record matches whatever the token's iat."""
        try:
            (record,) = await self.store.get_many((("jti", jti),))
        except StoreError as exc:
            return self._unknown(exc, 1)[0]
        if record is None:
            _CHECKS_OK.inc()
            return CheckResult(revoked=False)
        _CHECKS_REVOKED.inc()
        return CheckResult(revoked=True, matches=await self.store.complete([record]))

    def _unknown(self, exc: StoreError, count: int) -> list[CheckResult]:
        """The store failed: re-raise (fail closed) or accept, counted (fail open). Only an
        unreachable store may fail open, never local overload (``StoreBusy``)."""
        metrics.CHECKS.labels(result="error").inc(count)
        if self.fail_mode != "open" or not isinstance(exc, StoreUnavailable):
            raise exc
        metrics.FAIL_OPEN.inc(count)
        return [CheckResult(revoked=False, degraded=True) for _ in range(count)]

    async def check_many(self, items: Sequence[Claims]) -> list[CheckResult]:
        """All kinds of all items are fetched in one lookup."""
        pairs = [pair for claims in items for pair in claims.lookups()]
        try:
            found = await self.store.get_many(pairs) if pairs else []
        except StoreError as exc:
            return self._unknown(exc, len(items))
        results, offset = [], 0
        for claims in items:
            count = len(claims.lookups())
            matches = matching(claims, found[offset:offset + count])
            offset += count
            (_CHECKS_REVOKED if matches else _CHECKS_OK).inc()
            results.append(CheckResult(revoked=bool(matches), matches=matches))
        decided = [m for result in results for m in result.matches]
        if decided:  # one store read for every revoked item's details
            full = iter(await self.store.complete(decided))
            results = [CheckResult(revoked=r.revoked, matches=[next(full) for _ in r.matches])
                       for r in results]
        return results

    async def get(self, kind: str, value: str) -> Record | None:
        return await self.store.get(kind, value)

    async def unrevoke(self, kind: str, value: str) -> Record | None:
        record = await self.store.delete(kind, value, at=int(self.clock()))
        if record is not None:
            metrics.UNREVOCATIONS.labels(kind=kind).inc()
        return record

    async def list_records(self, *, kind: str | None = None, cursor: str | None = None,
                           limit: int, prefix: str | None = None,
                           actor: str | None = None) -> tuple[list[Record], str | None]:
        """A page of live records: ``prefix`` is the literal start of the value, ``actor``
        an exact match. A filtered page may be short (even empty) with a cursor: pages
        examine a bounded number of records."""
        return await self.store.scan(kind=kind, prefix=prefix, actor=actor, cursor=cursor,
                                     limit=limit)

    async def events(self, *, after: str | None, limit: int) -> list[Event]:
        return await self.store.events(after=after, limit=limit)

    async def search_events(self, *, after: str | None, limit: int, kind: str | None = None,
                            value: str | None = None,
                            actor: str | None = None) -> EventPage:
        """A page of the audit log with exact-match filters; its ``next`` is where the
        following page starts, whether or not anything matched."""
        return await self.store.search_events(after=after, limit=limit, kind=kind,
                                              value=value, actor=actor)

    async def remember_once(self, tag: str, scope: str, token_id: str,
                            expires_at: int) -> bool:
        """Replay protection for logout tokens (``tag`` "bcl") and Security Event Tokens
        ("set"): True the first time ``token_id`` of ``scope`` (an issuer) is seen, False
        while it is remembered (until ``expires_at``)."""
        return await self.store.remember_once(replay_suffix(tag, scope, token_id), expires_at)

    async def health(self) -> StoreHealth:
        """The store's health, with any local state it keeps (a mirror) and whether that
        is in sync."""
        return await self.store.health()

    async def subscribe(self) -> Subscription:
        """Live events from now on (``Subscription.history`` adds the past)."""
        return await self.feed.subscribe()

    def unsubscribe(self, subscription: Subscription) -> None:
        self.feed.unsubscribe(subscription)

    async def close(self) -> None:
        """End every subscription; the store itself is closed by its owner."""
        await self.feed.close()

    async def position(self) -> str:
        """The id of the newest event (``0-0`` when none was ever written). Read before a
        snapshot of the records, it is where a mirror starts following the events: every
        change made during the snapshot has a later id."""
        return await self.store.last_event_id() or "0-0"

    async def oldest_position(self) -> str | None:
        """The id of the oldest event the store still holds (None when it holds none): a
        mirror whose position is older has missed events trimmed since, and resyncs."""
        events = await self.store.events(after=None, limit=1)
        return events[0].id if events else None


#: Metric children resolved once: ``labels()`` on every check costs more than the count.
_CHECKS_OK = metrics.fast_counter(metrics.CHECKS.labels(result="ok"))
_CHECKS_REVOKED = metrics.fast_counter(metrics.CHECKS.labels(result="revoked"))


#: Counter children by (kind, source), both chosen by the code, never by a client: a
#: ``labels()`` lookup costs more than the increment it precedes.
_REVOCATION_COUNTERS: dict[tuple[str, str], metrics.FastCounter] = {}


def _revocations(kind: str, source: str) -> metrics.FastCounter:
    counter = _REVOCATION_COUNTERS.get((kind, source))
    if counter is None:
        counter = _REVOCATION_COUNTERS[(kind, source)] = metrics.fast_counter(
            metrics.REVOCATIONS.labels(kind=kind, source=source))
    return counter
