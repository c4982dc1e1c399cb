"""``redis://`` and ``rediss://``: the production store, on redis.asyncio with hiredis.

Layout (stable, see the contract; key names from ``revoker.store.keys``):
``{prefix}{kind}:{value}`` holds the record's fields that the key and its expiry do not
already carry, as compact JSON (``revoker.store.codec``), with an absolute expiry (EXAT)
equal to ``expires_at``; ``{prefix}events`` is a capped stream of events carrying full
records. The merge on re-revoke runs in one Lua script (``lua/upsert.lua``) so that two
concurrent revokers of the same key can never shorten it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from revoker.errors import (
    ConfigError,
    InvalidInput,
    NotDurable,
    StoreBusy,
    StoreChanged,
    StoreError,
    StoreUnavailable,
)
from revoker.model import Event, Record, parse_stream_id
from revoker.store import codec
from revoker.store.base import (
    COLD_POOL_SIZE,
    EventTail,
    ExportRow,
    RecordFilter,
    Store,
    StoreHealth,
    StreamState,
    Upserted,
)
from revoker.store.scripts import DELETE, EXPORT, LOOKUP, SCRIPTS, UPSERT

log = logging.getLogger(__name__)

#: Records per script call: a script blocks Redis while it runs, so a 10,000-item batch
#: is sent as several calls in one pipeline.
UPSERT_CHUNK: Final = 200
SCAN_COUNT: Final = 1000
#: SCAN calls one listing page makes at most (so at most this many times ``SCAN_COUNT``
#: keys examined), however few keys match; a page also stops early once it has spent its
#: time budget (``Store.scan_budget_s``), returning what it found and a cursor.
SCAN_ROUNDS: Final = 1000
UNAVAILABLE: Final = (rex.ConnectionError, rex.TimeoutError, rex.BusyLoadingError,
                      rex.ReadOnlyError, rex.TryAgainError, rex.ClusterDownError)


#: ``scan-cursor.skip``: SCAN cursors are unsigned 64-bit, a skip stays within one batch.
#: ``scan-cursor.after``: a SCAN cursor, and where to resume in that SCAN step's batch (the
#: ``batch_order`` of the last key a page took, hex; ``0`` at the start of the batch).
SCAN_CURSOR_RE: Final = re.compile(r"([0-9]{1,20})\.(0|[0-9a-f]{32})", re.ASCII)
U64_MAX: Final = 2**64 - 1


def connection_options(timeout_s: float) -> dict[str, Any]:
    """A connect timeout and a short, bounded retry; no socket timeout.

    Every store call is already bounded by ``Store._bounded`` (``REVOKER_STORE_TIMEOUT``),
    which cancels the call; redis-py then drops the connection, so no reply can be read
    by the wrong command. A redis-py socket timeout would only repeat that bound, and on
    Python 3.11 it costs an ``asyncio.wait_for`` task on every command sent. The blocking
    event tail (``open_tail``, used by the event feed and the mirror) is bounded the same
    way, by its block time plus the store timeout.
    """
    return {
        "socket_connect_timeout": max(timeout_s, 0.1),
        "socket_timeout": None,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.005), retries=2),
        "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
        "decode_responses": False,
        "health_check_interval": 10,
    }


class RedisStore(Store):
    """Standalone (or Sentinel-managed) Redis: every key of ours is on one server."""

    #: Whether the events stream can be written by the same script as the record.
    same_slot_events: bool = True

    def __init__(self, url: str, *, prefix: str, timeout_s: float, events_maxlen: int,
                 allow_eviction: bool = False, wait_replicas: int = 0,
                 wait_timeout_s: float = 1.0, pool_size: int = 64) -> None:
        super().__init__(prefix=prefix, timeout_s=timeout_s, events_maxlen=events_maxlen,
                         pool_size=pool_size, cold_pool_size=COLD_POOL_SIZE)
        self.url = url
        self.allow_eviction = allow_eviction
        self.wait_replicas = wait_replicas
        self.wait_timeout_s = wait_timeout_s
        #: The hot lane's pool: lookups, upserts, deletes and ``remember_once`` only.
        self.client: Any = self._connect(max_connections=pool_size)
        #: The cold lane's pool: listings, event pages, health and start-up checks.
        self.cold_client: Any = self._connect(max_connections=COLD_POOL_SIZE)
        self.startup_warnings: list[str] = []

    def _connect(self, *, max_connections: int) -> Any:
        """A client with a pool of its own. The lanes keep concurrent use within
        ``max_connections``, so the pool never has to refuse or queue a call itself."""
        return aioredis.Redis.from_url(self.url, max_connections=max_connections,
                                       **connection_options(self.timeout_s))

    def open_tail(self) -> EventTail:
        """A dedicated connection for the blocking XREAD (one per worker, see
        ``revoker.store.feed``), taken from neither lane."""
        client = self._connect(max_connections=1)

        async def read(after: str, limit: int, block_ms: int) -> list[Event]:
            reply = await client.xread({self.events_key: after}, count=limit,
                                       block=max(block_ms, 1))
            entries = reply[0][1] if reply else []
            return [_event(entry_id, fields) for entry_id, fields in entries]

        async def close() -> None:
            await client.aclose()

        return EventTail(self, read, close)

    def _translate(self, exc: Exception) -> StoreError:
        if isinstance(exc, rex.MaxConnectionsError):  # local overload, not an outage
            return StoreBusy("every store connection is in use")
        if isinstance(exc, UNAVAILABLE):
            return StoreUnavailable(f"redis unavailable: {type(exc).__name__}")
        if isinstance(exc, rex.RedisError):
            return StoreError(f"redis error: {type(exc).__name__}")
        raise exc

    async def open(self) -> None:
        """Refuse to run where Redis may silently evict revocations."""
        policy = await self._bounded(self._eviction_policy(), operation="open",
                                     timeout_s=max(self.timeout_s, 2), lane=self.cold)
        if policy != "noeviction" and not self.allow_eviction:
            raise ConfigError(
                "REVOKER_ALLOW_EVICTION",
                f"Redis maxmemory-policy is {policy!r}: it may evict revocations silently; "
                "set it to noeviction, or set REVOKER_ALLOW_EVICTION=true to accept the risk")
        # The hot lane's first connection is made here, not by the first check.
        await self._bounded(self.client.ping(), operation="open",
                            timeout_s=max(self.timeout_s, 2), lane=self.hot)
        health = await self.health()
        self.startup_warnings = list(health.warnings)
        for warning in health.warnings:
            log.warning("%s", warning)

    async def _eviction_policy(self) -> str:
        info = await self.cold_client.info("memory")
        return _text(info.get("maxmemory_policy", "unknown"))

    async def close(self) -> None:
        await self.client.aclose()
        await self.cold_client.aclose()

    # -- primitives --------------------------------------------------------------------

    def _upsert_args(self, records: Sequence[Record], at: int) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one ``upsert.lua`` call for these records."""
        keys = [self.key(record.kind, record.value) for record in records]
        if self.same_slot_events:
            keys.append(self.events_key)
        args: list[Any] = [self.events_maxlen, at, "1" if self.same_slot_events else "0"]
        for record in records:
            args += (codec.compact_json(record), record.to_json(), record.expires_at)
        return keys, args

    async def _scripted(self, add: Callable[[Any], None]) -> list[Any]:
        """One round trip of commands, scripts sent as EVALSHA.

        redis-py's registered scripts add a SCRIPT EXISTS round trip to every pipeline;
        instead the scripts are loaded again only when Redis answers NOSCRIPT (a restart or
        a failover to a node that never saw them). Nothing was written then: every write is
        inside a script, so sending the pipeline again is safe.
        """
        for attempt in range(2):
            # ``async with``: a pipeline cut short by the store timeout must still give its
            # connection back (redis-py only releases it on a completed ``execute``).
            async with self.client.pipeline(transaction=False) as pipe:
                add(pipe)
                try:
                    replies: list[Any] = await pipe.execute(raise_on_error=True)
                    return replies
                except rex.NoScriptError:
                    if attempt:
                        raise
            for script in SCRIPTS:
                await self.client.script_load(script.source)
        raise AssertionError("unreachable")

    def _wait(self, pipe: Any) -> None:
        if self.wait_replicas:
            pipe.wait(self.wait_replicas, int(self.wait_timeout_s * 1000))

    async def _upsert_many(self, records: Sequence[Record], at: int) -> list[Upserted]:
        def add(pipe: Any) -> None:
            for start in range(0, len(records), UPSERT_CHUNK):
                keys, args = self._upsert_args(records[start:start + UPSERT_CHUNK], at)
                pipe.evalsha(UPSERT.sha, len(keys), *keys, *args)
            self._wait(pipe)

        replies = await self._scripted(add)
        if self.wait_replicas:
            self._check_durable(replies.pop())
        flat = [item for reply in replies for item in reply]
        results = upserted(records, flat)
        if not self.same_slot_events:
            await self._append_events("revoked", [r.record for r in results], at)
        return results

    def _check_durable(self, acknowledged: int) -> None:
        if int(acknowledged) < self.wait_replicas:
            raise NotDurable(f"only {acknowledged} of {self.wait_replicas} replicas "
                             "acknowledged the write in time")

    async def _append_events(self, kind: str, records: Sequence[Record], at: int) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.xadd(self.events_key, {"type": kind, "record": record.to_json(), "at": at},
                          maxlen=self.events_maxlen, approximate=True)
            await pipe.execute()

    async def _get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        """One script call: the value and, for the hits only, the key's expiry (the
        compact form leaves it to the key). Measured against MGET then EXPIRETIME for the
        hits: as cheap for a miss, one round trip instead of two for a hit (bench/memory.py)."""
        keys = [self.key(kind, value) for kind, value in pairs]
        try:
            reply = await self.client.evalsha(LOOKUP.sha, len(keys), *keys)
        except rex.NoScriptError:  # a restarted or newly promoted server
            await self.client.script_load(LOOKUP.source)
            reply = await self.client.evalsha(LOOKUP.sha, len(keys), *keys)
        return [None if item is None else codec.to_record(*pair, codec.parse(item[0]),
                                                          int(item[1]))
                for pair, item in zip(pairs, reply, strict=True)]

    async def _decode(self, client: Any, pairs: Sequence[tuple[str, str]],
                      raw: Sequence[bytes | None]) -> list[Record | None]:
        parsed = [None if item is None else codec.parse(item) for item in raw]
        missing = [i for i, data in enumerate(parsed)
                   if data is not None and not codec.has_expiry(data)]
        expiries: dict[int, int] = {}
        if len(missing) == 1:  # the usual hit: a plain command costs less than a pipeline
            expiries[missing[0]] = int(await client.expiretime(self.key(*pairs[missing[0]])))
        elif missing:
            async with client.pipeline(transaction=False) as pipe:
                for i in missing:
                    pipe.expiretime(self.key(*pairs[i]))
                replies = await pipe.execute()
            expiries = dict(zip(missing, (int(r) for r in replies), strict=True))
        out: list[Record | None] = []
        for i, data in enumerate(parsed):
            expiry = expiries.get(i)
            if data is None or expiry == -2:  # -2: removed between the two reads
                out.append(None)
            else:
                out.append(codec.to_record(*pairs[i], data, expiry))
        return out

    async def _delete(self, kind: str, value: str, at: int) -> Record | None:
        keys = [self.key(kind, value)]
        if self.same_slot_events:
            keys.append(self.events_key)

        def add(pipe: Any) -> None:
            pipe.evalsha(DELETE.sha, len(keys), *keys, self.events_maxlen, at, kind, value)
            self._wait(pipe)

        replies = await self._scripted(add)
        old = replies[0]
        if self.wait_replicas:
            self._check_durable(replies[1])
        if old is None:
            return None
        record = Record.from_json(old)
        if not self.same_slot_events:
            await self._append_events("unrevoked", [record], at)
        return record

    def _check_cursor(self, cursor: str) -> None:
        _decode_scan_cursor(cursor)

    async def _scan(self, wanted: RecordFilter, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]:
        """A page never exceeds ``limit``: a SCAN batch it does not use up is resumed after
        the last key it took (see ``batch_order``); like SCAN itself, a record changed
        mid-listing may appear twice."""
        scan_cursor, after = _decode_scan_cursor(cursor)
        pattern = self.keys.record_pattern(wanted.kind, wanted.prefix or "")
        found: list[Record] = []
        deadline = time.monotonic() + self.scan_budget_s(limit)
        for _ in range(SCAN_ROUNDS):
            following, batch = await self.cold_client.scan(scan_cursor, match=pattern,
                                                           count=SCAN_COUNT)
            taken = await self._collect(self.cold_client, batch, after, wanted, limit, found)
            if taken is not None:
                return found, f"{scan_cursor}.{taken.hex()}"
            after, scan_cursor = None, int(following)
            if scan_cursor == 0:
                return found, None
            if len(found) == limit or time.monotonic() >= deadline:
                break
        return found, f"{scan_cursor}.0"

    async def _collect(self, client: Any, keys: list[bytes], after: bytes | None,
                       wanted: RecordFilter, limit: int, found: list[Record]) -> bytes | None:
        """Read the keys of one SCAN batch in ``batch_order``, those after ``after`` only,
        appending matching records to ``found`` until it holds ``limit``. Returns the
        order of the last key taken, to resume this batch after it, or None when the
        batch was used up."""
        ordered = sorted((batch_order(key), key) for key in keys)
        if after is not None:
            ordered = [item for item in ordered if item[0] > after]
        batch = [key for _, key in ordered]
        position = 0
        while position < len(batch):
            need = limit - len(found)
            chunk = batch[position:position + max(need, 32)]
            pairs = [_wanted(self.keys.parse_record(key), wanted) for key in chunk]
            records = await self._read(client, [p for p in pairs if p is not None])
            by_pair = {(r.kind, r.value): r for r in records}
            for offset, pair in enumerate(pairs):
                record = by_pair.get(pair) if pair is not None else None
                if record is not None and wanted.matches(record):
                    found.append(record)
                    if len(found) == limit:
                        consumed = position + offset + 1
                        return ordered[consumed - 1][0] if consumed < len(batch) else None
            position += len(chunk)
        return None

    async def _read(self, client: Any, pairs: list[tuple[str, str]]) -> list[Record]:
        """Records of listed keys: the value and the expiry of each, in one round trip."""
        if not pairs:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for kind, value in pairs:
                key = self.key(kind, value)
                pipe.get(key)
                pipe.expiretime(key)
            replies = await pipe.execute()
        out = []
        for i, pair in enumerate(pairs):
            raw, expiry = replies[2 * i], int(replies[2 * i + 1])
            if raw is not None and expiry != -2:
                out.append(codec.to_record(*pair, codec.parse(raw), expiry))
        return out

    async def _export_page(self, cursor: str | None,
                           count: int) -> tuple[list[ExportRow], str | None]:
        """One script call per page (``lua/export.lua``: a SCAN step and, per record,
        four values), so no JSON is parsed here and a page is one round trip. Cluster
        keys span slots: it reads as any backend."""
        if not self.same_slot_events:
            return await super()._export_page(cursor, count)
        pattern, skip = self.keys.record_pattern(), len(self.prefix.encode())

        def step(pipe: Any, at: int) -> object:
            return pipe.evalsha(EXPORT.sha, 0, at, pattern, count, skip)

        try:
            flat, server = await self._on_one_server(cursor, step)
        except rex.NoScriptError:
            await self.cold_client.script_load(EXPORT.source)
            flat, server = await self._on_one_server(cursor, step)
        never = codec.NEVER
        rows: list[ExportRow] = [
            (flat[i], flat[i + 2], never if flat[i + 1] == -1 else flat[i + 1],
             None if flat[i + 3] == -1 else flat[i + 3])
            for i in range(1, len(flat), 4)]
        return rows, _export_cursor(server, int(flat[0]))

    async def _on_one_server(self, cursor: str | None,
                             step: Callable[[Any, int], object]) -> tuple[Any, str]:
        """Run one SCAN step (queued by ``step`` with the SCAN cursor) right after ``INFO
        server``, in one pipeline on one connection, and return its reply with the run id
        of the server that answered. An export cursor names that server: a SCAN cursor
        means nothing to another one (after a failover, or a restart), and resuming it
        there could skip keys, so a page on another server raises ``StoreChanged``."""
        expected, at = _parse_export_cursor(cursor)
        async with self.cold_client.pipeline(transaction=False) as pipe:
            pipe.info("server")
            step(pipe, at)
            info, reply = await pipe.execute()
        server = str(info.get("run_id", ""))  # none: a server that cannot tell, taken as one
        if expected is not None and server != expected:
            raise StoreChanged("the Redis server changed during an export (a failover or "
                               "a restart): it starts over")
        return reply, server

    @property
    def names_cheap(self) -> bool:
        return self.same_slot_events

    async def _export_names(self, cursor: str | None,
                            count: int) -> tuple[list[bytes], str | None]:
        """A bare ``SCAN``: about a quarter of the export script's cost to Redis per
        record (no value, no expiry read, nothing built in Lua)."""
        if not self.same_slot_events:
            return await super()._export_names(cursor, count)
        pattern = self.keys.record_pattern()
        (following, keys), server = await self._on_one_server(
            cursor, lambda pipe, at: pipe.scan(at, match=pattern, count=count))
        return self.keys.record_names(keys), _export_cursor(server, int(following))

    async def _size_hint(self) -> int | None:
        if not self.same_slot_events:
            return None
        return int(await self.cold_client.dbsize())

    async def _events(self, after: str | None, limit: int, block_ms: int) -> list[Event]:
        """A page read; blocking reads go through ``open_tail`` only."""
        start = after or "0-0"
        parse_stream_id(start)
        entries = await self.cold_client.xrange(self.events_key,
                                                min=f"({start}" if after else "-", count=limit)
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def _last_event_id(self) -> str | None:
        entries = await self.cold_client.xrevrange(self.events_key, count=1)
        return _text(entries[0][0]) if entries else None

    async def _stream_state(self) -> StreamState | None:
        try:
            info = await self.cold_client.xinfo_stream(self.events_key)
        except rex.ResponseError:  # no such key: no event was ever written
            return None
        return stream_state(info)

    async def _remember_once(self, key: str, expires_at: int) -> bool:
        return bool(await self.client.set(key, b"1", nx=True, exat=expires_at))

    async def _health(self) -> StoreHealth:
        await self.cold_client.ping()
        info = await self.cold_client.info()
        detail, warnings = _describe(info)
        detail["rdb_save"] = await self._rdb_save_config()
        if detail["aof_enabled"] is False and not detail["rdb_save"]:
            warnings.append("Redis persistence is off (no AOF, no RDB): a Redis restart "
                            "loses every revocation")
        if self.wait_replicas and int(detail.get("connected_replicas", 0)) < self.wait_replicas:
            warnings.append(f"REVOKER_REDIS_WAIT_REPLICAS={self.wait_replicas} but only "
                            f"{detail.get('connected_replicas', 0)} replicas are connected")
        return StoreHealth(ok=True, detail=detail, warnings=warnings)

    async def _rdb_save_config(self) -> str | None:
        try:
            reply = await self.cold_client.config_get("save")
        except rex.ResponseError:  # CONFIG may be disabled on managed Redis
            return None
        value = reply.get(b"save", reply.get("save", b""))
        return _text(value) or ""


def _describe(info: dict[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    detail = {
        "backend": "redis",
        "redis_version": _text(info.get("redis_version", "")),
        "role": _text(info.get("role", "")),
        "maxmemory_policy": _text(info.get("maxmemory_policy", "")),
        "aof_enabled": bool(int(info.get("aof_enabled", 0))),
        "connected_replicas": int(info.get("connected_slaves", 0)),
        "evicted_keys": int(info.get("evicted_keys", 0)),
    }
    warnings = []
    if detail["evicted_keys"]:
        warnings.append(f"Redis has evicted {detail['evicted_keys']} keys")
    return detail, warnings


def _event(entry_id: Any, fields: dict[Any, Any]) -> Event:
    def field(name: str) -> Any:
        return fields.get(name.encode(), fields.get(name))

    return Event(id=_text(entry_id), type=_text(field("type")),
                 record=Record.from_json(field("record")), at=int(field("at")))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def batch_order(key: bytes) -> bytes:
    """Where a key sorts within its SCAN batch: a digest of it. A page that ends inside a
    batch resumes after the last key it took, by this order, rather than after so many
    keys: a key that left the batch between two pages (unrevoked, expired) must not
    shift the rest, or a record present throughout would be skipped. Short and fixed in
    size, unlike the key, so the cursor is too."""
    return hashlib.blake2b(key, digest_size=16).digest()


def decode_after(text: str) -> bytes | None:
    """The resume point of a cursor: None for ``0`` (the start of the batch)."""
    return None if text == "0" else bytes.fromhex(text)


def _decode_scan_cursor(cursor: str | None) -> tuple[int, bytes | None]:
    if not cursor:
        return 0, None
    match = SCAN_CURSOR_RE.fullmatch(cursor)
    if match is None or int(match[1]) > U64_MAX:
        raise InvalidInput("cursor is not one this service returned", field="cursor")
    return int(match[1]), decode_after(match[2])


def _wanted(pair: tuple[str, str] | None,
            wanted: RecordFilter) -> tuple[str, str] | None:
    return pair if pair is not None and wanted.matches_key(*pair) else None


def upserted(records: Sequence[Record], flat: list[Any]) -> list[Upserted]:
    """``upsert.lua``'s flat reply (created, stored compact JSON, expiry per record, in
    order) as full records: kind and value are the caller's, the rest what is stored.

    A created record is stored exactly as sent (the script writes the caller's compact
    JSON with the caller's expiry), so it is the caller's record; only a merge is read
    back from the reply."""
    out = []
    for i, record in enumerate(records):
        if flat[3 * i]:
            out.append(Upserted(record, created=True))
            continue
        stored, expires_at = flat[3 * i + 1], int(flat[3 * i + 2])
        full = codec.to_record(record.kind, record.value, codec.parse(stored), expires_at)
        out.append(Upserted(full, created=False))
    return out


def stream_state(info: dict[Any, Any]) -> StreamState:
    """XINFO STREAM's reply, as the mirror needs it."""
    def field(name: str) -> Any:
        return info.get(name, info.get(name.encode()))

    added = field("entries-added")
    first = field("first-entry")
    return StreamState(first_id=_text(first[0]) if first else None,
                       last_id=_text(field("last-generated-id") or "0-0"),
                       added=None if added is None else int(added),
                       length=int(field("length") or 0))


def _export_cursor(server: str, following: int) -> str | None:
    """``{run id}:{SCAN cursor}``, or None at the end of the SCAN."""
    return f"{server}:{following}" if following else None


def _parse_export_cursor(cursor: str | None) -> tuple[str | None, int]:
    if not cursor:
        return None, 0
    server, _, following = cursor.rpartition(":")
    return server, int(following)
