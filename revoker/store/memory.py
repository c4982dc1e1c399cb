"""``memory://``: a real, single-process store with expiry, for development and tests.

It keeps the same semantics as Redis (absolute expiry, merge on re-revoke, a capped
event stream with ``ms-seq`` ids) so that one behaviour suite can run against both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import heapq
import re
import time
from collections import deque
from collections.abc import Callable, Sequence

from revoker.errors import InvalidInput
from revoker.model import KINDS, Event, Record, merge, parse_stream_id
from revoker.store.base import RecordFilter, Store, StoreHealth, StreamState, Upserted

#: Keys one listing page examines at most (see ``Store.scan``).
EXAMINED_PER_PAGE = 10_000


class MemoryStore(Store):
    """Records in a dict, expiries in a heap purged lazily on every write."""

    single_process = True

    def __init__(self, *, prefix: str, timeout_s: float, events_maxlen: int,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(prefix=prefix, timeout_s=timeout_s, events_maxlen=events_maxlen)
        self._clock = clock
        self._records: dict[tuple[str, str], Record] = {}
        self._expiries: list[tuple[int, tuple[str, str]]] = []
        self._log: deque[Event] = deque(maxlen=events_maxlen)
        self._last_id = (0, 0)
        self._added = 0
        self._appended = asyncio.Event()
        self._seen: dict[str, int] = {}  # remember_once keys -> expires_at

    def _live(self, pair: tuple[str, str]) -> Record | None:
        record = self._records.get(pair)
        if record is not None and record.expires_at <= self._clock():
            del self._records[pair]
            return None
        return record

    def _purge(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            _, pair = heapq.heappop(self._expiries)
            self._live(pair)

    def _append(self, kind: str, record: Record, at: int) -> None:
        ms = int(self._clock() * 1000)
        last_ms, last_seq = self._last_id
        new_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        self._last_id = new_id
        self._log.append(Event(id=f"{new_id[0]}-{new_id[1]}", type=kind, record=record, at=at))
        self._added += 1
        self._appended.set()
        self._appended = asyncio.Event()

    async def _upsert_many(self, records: Sequence[Record], at: int) -> list[Upserted]:
        self._purge()
        results = []
        for record in records:
            pair = (record.kind, record.value)
            old = self._live(pair)
            stored = record if old is None else merge(old, record)
            self._records[pair] = stored
            heapq.heappush(self._expiries, (stored.expires_at, pair))
            self._append("revoked", stored, at)
            results.append(Upserted(stored, created=old is None))
        return results

    async def _get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        return [self._live(pair) for pair in pairs]

    async def _delete(self, kind: str, value: str, at: int) -> Record | None:
        record = self._live((kind, value))
        if record is None:
            return None
        del self._records[(kind, value)]
        self._append("unrevoked", record, at)
        return record

    def _check_cursor(self, cursor: str) -> None:
        _decode_cursor(cursor)

    async def _scan(self, wanted: RecordFilter, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]:
        """Keys in order; the cursor is the last key examined."""
        self._purge()
        pairs = sorted(p for p in self._records if wanted.matches_key(*p))
        start = bisect.bisect_right(pairs, _decode_cursor(cursor)) if cursor else 0
        page: list[Record] = []
        end = min(len(pairs), start + EXAMINED_PER_PAGE)
        position = start
        while position < end and len(page) < limit:
            record = self._live(pairs[position])
            position += 1
            if record is not None and wanted.matches(record):
                page.append(record)
        next_cursor = _encode_cursor(pairs[position - 1]) if position < len(pairs) else None
        return page, next_cursor

    async def _events(self, after: str | None, limit: int, block_ms: int) -> list[Event]:
        found = self._after(after, limit)
        if found or block_ms <= 0:
            return found
        waiter = self._appended
        try:
            await asyncio.wait_for(waiter.wait(), block_ms / 1000)
        except TimeoutError:
            return []
        return self._after(after, limit)

    def _after(self, after: str | None, limit: int) -> list[Event]:
        floor = parse_stream_id(after) if after else (-1, -1)
        out = []
        for event in self._log:
            if parse_stream_id(event.id) > floor:
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    async def _last_event_id(self) -> str | None:
        return self._log[-1].id if self._log else None

    async def _stream_state(self) -> StreamState | None:
        if not self._added:
            return None
        first = self._log[0].id if self._log else None
        return StreamState(first_id=first, last_id=f"{self._last_id[0]}-{self._last_id[1]}",
                           added=self._added, length=len(self._log))

    async def _remember_once(self, key: str, expires_at: int) -> bool:
        now = self._clock()
        if self._seen.get(key, 0) > now:
            return False
        if len(self._seen) >= 4096:
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
        self._seen[key] = expires_at
        return True

    async def _health(self) -> StoreHealth:
        return StoreHealth(ok=True, detail={"backend": "memory", "records": len(self._records)},
                           warnings=["memory:// keeps revocations in this process only: "
                                     "they are lost on restart and not shared between workers"])


def _encode_cursor(pair: tuple[str, str]) -> str:
    raw = f"{pair[0]}:{pair[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: URL-safe base64 without padding of ``kind:value`` (a value is at most 512 bytes).
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{4,1024}", re.ASCII)


def _decode_cursor(cursor: str) -> tuple[str, str]:
    bad = InvalidInput("cursor is not one this service returned", field="cursor")
    if _CURSOR_RE.fullmatch(cursor) is None:
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    kind, sep, value = raw.partition(":")
    if not sep or kind not in KINDS:
        raise bad
    return kind, value
