"""A local mirror of the denylist, so that checks are answered from memory.

``REVOKER_CHECK_MODE=mirror``: each worker loads a snapshot of every record (SCAN + MGET)
and then tails ``{prefix}events`` with a blocking XREAD from the stream position read
*before* the snapshot, so nothing written during the load is lost (replaying an event
the snapshot already holds is harmless: events carry the whole stored record).

Consistency contract (see docs/performance.md):
- in sync, a revoke acknowledged 2xx reaches every worker as soon as Redis pushes the
  event to the blocked XREAD (milliseconds);
- the mirror answers only while it has heard from Redis within ``max_lag_s``; past that,
  after a connection error, or while (re)loading, checks fall back to reading Redis
  (strict mode), which raises ``StoreUnavailable`` when Redis cannot answer, so the fail
  mode applies; ``/readyz`` fails while the mirror is not in sync;
- a gap (the stream trimmed past our position, deleted or recreated) triggers a full
  resync.

Records are kept as the raw JSON Redis holds, keyed by ``kind:value``, and parsed only
on a hit (about 1% of checks), which keeps the per-entry cost near that of the bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis import exceptions as rex

from revoker.errors import ConfigError, StoreUnavailable
from revoker.jsoncodec import loads
from revoker.model import KINDS, Record, parse_stream_id
from revoker.store import Store

log = logging.getLogger(__name__)

SCAN_COUNT: Final = 1000
READ_COUNT: Final = 1000
BUCKET_S: Final = 60
#: After a read that returned events, the tail waits this long before reading again, so
#: that under a stream of revokes each XREAD carries a batch (every worker reads every
#: event, and a round trip costs far more than an entry). The first event after a quiet
#: spell is read at once; under load this adds at most this much to propagation.
TAIL_PAUSE_S: Final = 0.005
#: How often the tail also asks XINFO whether events were trimmed past its position.
GAP_CHECK_S: Final = 0.1
RETRY_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)
UNSUPPORTED: Final = "mirror supports redis:// and rediss:// stores (not Sentinel or Cluster yet)"
_KIND_PREFIXES: Final = tuple(f"{kind}:" for kind in KINDS)
Lookup = Callable[[Sequence[tuple[str, str]]], Awaitable[list[Record | None]]]


@dataclass(frozen=True, slots=True)
class Position:
    """Where the mirror is in the stream: the last id applied and how many entries the
    stream had ever received up to it (``None`` on Redis before 7.0)."""

    last_id: str
    added: int | None


class Coalescer:
    """Strict mode's read path: the lookups of every check that arrives in one turn of the
    event loop go to Redis together, as one MGET, instead of one round trip per request.

    Nothing is cached: each check still waits for a read that starts after it arrived.
    """

    def __init__(self, fetch: Lookup) -> None:
        self.fetch = fetch
        self._pending: list[tuple[Sequence[tuple[str, str]],
                                  asyncio.Future[list[Record | None]]]] = []

    async def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Record | None]] = loop.create_future()
        self._pending.append((pairs, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._fetch(batch))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _fetch(self, batch: list[tuple[Sequence[tuple[str, str]],
                                             asyncio.Future[list[Record | None]]]]) -> None:
        try:
            found = await self.fetch([pair for pairs, _ in batch for pair in pairs])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        offset = 0
        for pairs, future in batch:
            if not future.done():
                future.set_result(found[offset:offset + len(pairs)])
            offset += len(pairs)


_background: set[asyncio.Task[None]] = set()


class Gap(Exception):
    """Events were lost between our position and the stream: resync from a snapshot."""


class Table:
    """The mirrored records and an expiry index of coarse buckets (no per-entry heap)."""

    __slots__ = ("buckets", "entries", "swept")

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.buckets: dict[int, list[str]] = {}
        self.swept = 0

    def put(self, key: str, raw: bytes, expires_at: int, now: float) -> None:
        if expires_at <= now:
            self.entries.pop(key, None)
            return
        self.entries[key] = raw
        self.buckets.setdefault(expires_at // BUCKET_S, []).append(key)

    def sweep(self, now: float) -> int:
        """Drop expired entries of every bucket that is wholly in the past."""
        removed = 0
        current = int(now) // BUCKET_S
        if current <= self.swept:
            return 0
        self.swept = current
        for bucket in [b for b in self.buckets if b < current]:
            for key in self.buckets.pop(bucket):
                raw = self.entries.get(key)
                if raw is not None and Record.from_json(raw).expires_at <= now:
                    del self.entries[key]
                    removed += 1
        return removed


class Mirror:
    """One worker's copy of the denylist; ``lookup`` has the signature of ``Store.get_many``."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 block_ms: int = 1000, max_lag_s: float | None = None,
                 fallback: Lookup | None = None) -> None:
        client = getattr(store, "client", None)
        if not isinstance(client, aioredis.Redis):
            raise ConfigError("REVOKER_CHECK_MODE", UNSUPPORTED)
        self.store = store
        #: Where checks go while out of sync: Redis itself (strict mode).
        self.fallback: Lookup = fallback or store.get_many
        self.client: Any = client
        self.clock = clock
        self.block_ms = block_ms
        self.max_lag_s = max_lag_s if max_lag_s is not None else block_ms / 1000 + 1.0
        self.table = Table()
        self.position = Position("0-0", 0)
        self.synced = False
        self.resyncs = 0
        self.last_error: str | None = None
        self._fresh_until = 0.0
        self._tail_client: Any = _blocking_client(client, block_ms / 1000)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- the hot path -----------------------------------------------------------------

    async def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        """Answer from memory while in sync; otherwise ask Redis (which may fail)."""
        if not self.synced or time.monotonic() > self._fresh_until:
            return await self.fallback(pairs)
        entries = self.table.entries
        found: list[Record | None] = []
        for kind, value in pairs:
            raw = entries.get(f"{kind}:{value}")
            if raw is None:
                found.append(None)
                continue
            record = Record.from_json(raw)
            found.append(record if record.expires_at > self.clock() else None)
        return found

    @property
    def in_sync(self) -> bool:
        return self.synced and time.monotonic() <= self._fresh_until

    async def readiness(self) -> tuple[bool, str, Any]:
        detail = {"in_sync": self.in_sync, "entries": len(self.table.entries),
                  "last_event_id": self.position.last_id, "resyncs": self.resyncs}
        if self.last_error and not self.in_sync:
            detail["error"] = self.last_error
        return self.in_sync, "mirror", detail

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revoker-mirror")

    async def stop(self) -> None:
        """Cancel the sync task. The flag matters too: a cancellation that lands while
        redis-py is inside its own read timeout can come out as a TimeoutError, which the
        loop would otherwise treat as an outage and retry."""
        self._stopping = True
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it at exit
        await self._tail_client.aclose(close_connection_pool=True)

    async def _run(self) -> None:
        """Load, tail until something breaks, then reload or reconnect; forever."""
        failures = 0
        need_snapshot = not self.synced
        while not self._stopping:
            try:
                if need_snapshot:
                    await self.resync()
                    need_snapshot = False
                await self._tail()
            except Gap as exc:
                self._lose(f"gap: {exc}")
                need_snapshot = True
                failures = 0
            except (rex.RedisError, OSError, StoreUnavailable, TimeoutError) as exc:
                self._lose(f"redis: {type(exc).__name__}")
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently freeze the mirror in sync
                log.exception("mirror sync failed")
                self._lose("internal error")
                need_snapshot = True
                await asyncio.sleep(RETRY_S[-1])

    def _lose(self, reason: str) -> None:
        if self.synced:
            log.warning("mirror out of sync (%s); checks read Redis until it recovers", reason)
        self.synced = False
        self.last_error = reason

    # -- loading ----------------------------------------------------------------------

    async def resync(self) -> None:
        """Snapshot every record, replay what happened meanwhile, then swap it in."""
        self.synced = False
        position = await self._read_position()
        if position is None:
            position = Position("0-0", 0)
        table = Table()
        now = self.clock()
        async for key, raw in self._scan():
            table.put(key, raw, int(loads(raw)["expires_at"]), now)
        position = await self._catch_up(table, position)
        self.table, self.position = table, position
        self.resyncs += 1
        self._mark_fresh()
        self.synced = True
        self.last_error = None
        log.info("mirror loaded %d records up to event %s", len(table.entries), position.last_id)

    async def _scan(self) -> Any:
        pattern = _glob_escape(self.store.prefix) + "*"
        skip = len(self.store.prefix.encode())
        cursor = 0
        while True:
            cursor, keys = await self._tail_client.scan(cursor, match=pattern, count=SCAN_COUNT)
            suffixes = [_suffix(key, skip) for key in keys]
            wanted = [key for key, suffix in zip(keys, suffixes, strict=True) if suffix]
            values = await self._tail_client.mget(wanted) if wanted else []
            for suffix, raw in zip([s for s in suffixes if s], values, strict=True):
                if raw is not None:
                    yield suffix, raw
            if int(cursor) == 0:
                return

    async def _catch_up(self, table: Table, position: Position) -> Position:
        while True:
            reply = await self._tail_client.xread({self.store.events_key: position.last_id},
                                            count=READ_COUNT)
            entries = reply[0][1] if reply else []
            position = self._apply(table, entries, position)
            if len(entries) < READ_COUNT:
                return position

    # -- tailing ----------------------------------------------------------------------

    async def _tail(self) -> None:
        """A blocking XREAD, with XINFO (to detect a gap) pipelined in front of it at most
        every ``GAP_CHECK_S``: a busy stream must not cost a second command per batch."""
        checked = 0.0
        while not self._stopping:
            pipe = self._tail_client.pipeline(transaction=False)
            check = time.monotonic() - checked >= GAP_CHECK_S
            if check:
                pipe.xinfo_stream(self.store.events_key)
            pipe.xread({self.store.events_key: self.position.last_id}, count=READ_COUNT,
                       block=self.block_ms)
            replies = await pipe.execute(raise_on_error=False)
            reply = replies[-1]
            if isinstance(reply, Exception):
                raise reply
            if check:
                self._check_gap(replies[0])
                checked = time.monotonic()
            entries = reply[0][1] if reply else []
            self.position = self._apply(self.table, entries, self.position)
            self._mark_fresh()
            self.synced = True
            self.table.sweep(self.clock())
            if entries:  # a busy stream: let events gather rather than read them one by one
                await asyncio.sleep(TAIL_PAUSE_S)

    def _mark_fresh(self) -> None:
        self._fresh_until = time.monotonic() + self.max_lag_s

    async def _read_position(self) -> Position | None:
        try:
            info = await self._tail_client.xinfo_stream(self.store.events_key)
        except rex.ResponseError:  # no such key: no event was ever written
            return None
        return _position(info)

    def _check_gap(self, info: Any) -> None:
        """Raise ``Gap`` when the stream no longer holds every event after ours."""
        ours = self.position
        if isinstance(info, rex.ResponseError):
            if ours.last_id != "0-0":
                raise Gap("the events stream was deleted")
            return
        if isinstance(info, Exception):
            raise info
        theirs = _position(info)
        if _id(theirs.last_id) < _id(ours.last_id):
            raise Gap("the events stream was reset")
        if theirs.added is None or ours.added is None:
            return
        if theirs.added < ours.added:
            raise Gap("the events stream was recreated")
        if theirs.last_id == ours.last_id and theirs.added != ours.added:
            raise Gap("events were missed")
        first = _field(info, "first-entry")
        length = int(_field(info, "length") or 0)
        first_id = _id(_text(first[0])) if first else None
        if (first_id is None or first_id > _id(ours.last_id)) and \
                theirs.added - ours.added > length:
            raise Gap("the events stream was trimmed past our position")

    def _apply(self, table: Table, entries: list[Any], position: Position) -> Position:
        """Every worker applies every event: this is the mirror's share of each revoke."""
        if not entries:
            return position
        now = self.clock()
        for _, fields in entries:
            raw = fields.get(b"record")
            if raw is not None:
                data = loads(raw)
                key = f"{data['kind']}:{data['value']}"
                if fields.get(b"type") == b"unrevoked":
                    table.entries.pop(key, None)
                else:
                    table.put(key, raw, int(data["expires_at"]), now)
        added = None if position.added is None else position.added + len(entries)
        return Position(_text(entries[-1][0]), added)


def _blocking_client(client: Any, block_s: float) -> Any:
    """The mirror's own connections (loads and the blocking XREAD): a blocked connection
    must not hold up checks and revokes, and these calls are not bounded by the store's
    deadline, so they carry a socket timeout."""
    pool = client.connection_pool
    if type(pool) not in (aioredis.ConnectionPool, aioredis.BlockingConnectionPool):
        raise ConfigError("REVOKER_CHECK_MODE", UNSUPPORTED)
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = block_s + 2.0  # the store's own connections have none
    new_pool = aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=2,
                                       **kwargs)
    return aioredis.Redis(connection_pool=new_pool)


def _position(info: Any) -> Position:
    added = _field(info, "entries-added")
    return Position(_text(_field(info, "last-generated-id") or "0-0"),
                    None if added is None else int(added))


def _field(info: Any, name: str) -> Any:
    return info.get(name, info.get(name.encode())) if isinstance(info, dict) else None


def _id(text: str) -> tuple[int, int]:
    return parse_stream_id(text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _suffix(key: bytes, skip: int) -> str | None:
    """``kind:value`` of a record key, or None for the events stream and foreign keys."""
    suffix = key[skip:].decode("utf-8", "replace")
    return suffix if suffix.startswith(_KIND_PREFIXES) else None


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
