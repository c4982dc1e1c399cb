"""``redis+cluster://h1:7000,h2:7001``: the same layout spread over Redis Cluster slots.

What changes on Cluster, and why:

* Records hash to many slots and ``{prefix}events`` to one, so the keep-the-later-expiry
  script runs per record key (still atomic: the merge only touches that one key) and the
  event is appended right after, by a second command (``same_slot_events = False``).
* Writes are grouped by the primary that owns each key's slot and sent as one pipeline
  per primary, on one connection; with ``REVOKER_REDIS_WAIT_REPLICAS=N`` that pipeline
  ends in ``WAIT N timeout``, so every shard written confirms that N of *its* replicas
  hold the write before the revoke is answered 2xx (WAIT only counts the writes of the
  connection it is sent on, which is why the grouping matters). The event stream append
  is not waited for: the record is the durable fact, the event its audit trail.
* Batch checks use ``MGET`` per slot (``mget_nonatomic``); listings SCAN every primary in
  turn with a cursor ``shard.scan-cursor.skip``, where shards are ordered by their first
  slot, so a listing survives a failover that changes which node serves a shard.
* Topology changes (failover, resharding) are left to redis-py's cluster client; a write
  that meets a moved slot or a dead node is answered 503 and the client's next call
  re-reads the topology. Revokes are idempotent, so the caller's retry is safe.

URL grammar: ``redis+cluster://[user:password@]h1:7000[,h2:7001...][?ssl=true&ssl_ca_certs=
PATH&ssl_certfile=PATH&ssl_keyfile=PATH&ssl_cert_reqs=required]``; ``rediss+cluster://``
implies TLS. The hosts are startup nodes: any reachable one is enough.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, Final

from redis import exceptions as rex
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster

from revoker.errors import ConfigError, InvalidInput, StoreChanged, StoreError, StoreUnavailable
from revoker.model import Record
from revoker.store.base import ExportRow, RecordFilter, StoreHealth, Upserted
from revoker.store.redis import (
    SCAN_COUNT,
    SCAN_ROUNDS,
    U64_MAX,
    RedisStore,
    _describe,
    _text,
    connection_options,
    decode_after,
    upserted,
)
from revoker.store.scripts import DELETE, SCRIPTS, UPSERT
from revoker.store.sentinel import SSL_OPTIONS, VARIABLE, parse_multi_host

log = logging.getLogger(__name__)
CLUSTER_QUERY: Final = frozenset({"ssl", *SSL_OPTIONS})


class ClusterStore(RedisStore):
    """Redis Cluster: one slot per record key, the events stream in its own slot."""

    same_slot_events = False

    def __init__(self, url: str, **options: Any) -> None:
        #: Clients (by id) whose topology must be read again before their next use.
        self._stale: set[int] = set()
        super().__init__(url, **options)

    def _connect(self, *, max_connections: int) -> Any:
        """A cluster client whose pool to each node holds ``max_connections`` at most."""
        parsed = parse_multi_host(self.url, default_port=6379, known_query=CLUSTER_QUERY)
        if parsed.path:
            raise ConfigError(VARIABLE, "redis+cluster:// takes no database or path")
        options = connection_options(self.timeout_s)
        options.pop("retry_on_error")  # the cluster client retries on topology errors itself
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parsed.hosts],
                            require_full_coverage=False, max_connections=max_connections,
                            **options, **parsed.auth(), **parsed.ssl())

    def _translate(self, exc: Exception) -> StoreError:
        """redis-py raises ``RedisClusterException`` (not a ``RedisError``) when no node
        answers or a slot is uncovered, and ``ClusterError`` when redirects run out:
        both mean "the store cannot answer now", never a 500."""
        if isinstance(exc, (rex.RedisClusterException, rex.ClusterError)):
            return StoreUnavailable(f"redis cluster unavailable: {type(exc).__name__}")
        return super()._translate(exc)

    # -- writes: one pipeline per primary, WAIT on the same connection -------------------

    async def _upsert_many(self, records: Sequence[Record], at: int) -> list[Upserted]:
        commands = []
        for position, record in enumerate(records):  # one call per key: keys span slots
            keys, args = self._upsert_args([record], at)
            commands.append((keys[0], ("EVALSHA", UPSERT.sha, len(keys), *keys, *args),
                             position))
        replies = await self._write_by_node(commands)
        results = upserted(records, [item for reply in replies for item in reply])
        await self._append_events("revoked", [r.record for r in results], at)
        return results

    async def _delete(self, kind: str, value: str, at: int) -> Record | None:
        key = self.key(kind, value)
        command = ("EVALSHA", DELETE.sha, 1, key, self.events_maxlen, at, kind, value)
        old = (await self._write_by_node([(key, command, 0)]))[0]
        if old is None:
            return None
        record = Record.from_json(old)
        await self._append_events("unrevoked", [record], at)
        return record

    async def _write_by_node(self, commands: list[tuple[str, tuple[Any, ...], int]]
                             ) -> list[Any]:
        """Run each command on its key's primary, grouped per node, in input order."""
        await self._ensure_initialized(self.client)
        groups: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
        for key, args, position in commands:
            node = self.client.get_node_from_key(key)
            if node is None:
                raise StoreUnavailable("no cluster node serves this key's slot")
            groups.setdefault(node.name, (node, []))[1].append(PipelineCommand(position, *args))
        results: list[Any] = [None] * len(commands)
        for node, pipeline in groups.values():
            await self._run_on_node(node, pipeline)
            for command in pipeline:
                results[command.position] = command.result
        return results

    async def _run_on_node(self, node: ClusterNode, pipeline: list[PipelineCommand]) -> None:
        wait = None
        if self.wait_replicas:
            wait = PipelineCommand(-1, "WAIT", self.wait_replicas,
                                   int(self.wait_timeout_s * 1000))
        try:
            await node.execute_pipeline([*pipeline, *([wait] if wait else [])])
            if any(isinstance(c.result, rex.NoScriptError) for c in pipeline):
                # A node new to us (or restarted, or just promoted) lacks the scripts:
                # load them and send again; the scripts are idempotent merges.
                for script in SCRIPTS:
                    await node.execute_command("SCRIPT", "LOAD", script.source)
                await node.execute_pipeline([*pipeline, *([wait] if wait else [])])
        except (rex.ConnectionError, rex.TimeoutError):
            self._topology_stale(node)
            raise
        for command in pipeline:
            if isinstance(command.result, (rex.MovedError, rex.AskError, rex.ClusterDownError,
                                           rex.TryAgainError)):
                self._topology_stale(node)
                raise StoreUnavailable("the cluster is changing topology; retry")
            if isinstance(command.result, Exception):
                raise command.result
        if wait is not None:
            if isinstance(wait.result, Exception):
                raise wait.result
            self._check_durable(int(wait.result))

    def _topology_stale(self, node: ClusterNode) -> None:
        """Make the cluster client re-read the topology before its next command."""
        node.update_active_connections_for_reconnect()
        self._stale.update((id(self.client), id(self.cold_client)))

    # -- reads ---------------------------------------------------------------------------

    async def _get_many(self, pairs: Sequence[tuple[str, str]]) -> list[Record | None]:
        """Keys span slots, so no one script can read them: MGET per slot, then the
        expiry of the hits (rare) in one pipeline."""
        keys = [self.key(kind, value) for kind, value in pairs]
        raw = await self.client.mget_nonatomic(keys)
        return await self._decode(self.client, pairs, raw)

    def _shards(self) -> list[ClusterNode]:
        """Primaries ordered by the first slot they serve: stable across a failover (of
        the cold lane's client: listings and health run there)."""
        first_slot: dict[str, int] = {}
        for slot, nodes in self.cold_client.nodes_manager.slots_cache.items():
            if nodes and nodes[0].name not in first_slot:
                first_slot[nodes[0].name] = slot
        primaries = [n for n in self.cold_client.get_primaries() if n.name in first_slot]
        return sorted(primaries, key=lambda n: first_slot[n.name])

    def _check_cursor(self, cursor: str) -> None:
        _decode_cluster_cursor(cursor)

    async def _scan(self, wanted: RecordFilter, cursor: str | None,
                    limit: int) -> tuple[list[Record], str | None]:
        """Page through each shard in turn; within a shard, exactly as standalone."""
        shard, scan_cursor, after = _decode_cluster_cursor(cursor)
        await self._ensure_initialized(self.cold_client)
        shards = self._shards()
        pattern = self.keys.record_pattern(wanted.kind, wanted.prefix or "")
        found: list[Record] = []
        deadline = time.monotonic() + self.scan_budget_s(limit)
        for _ in range(SCAN_ROUNDS):
            if shard >= len(shards) or len(found) == limit or time.monotonic() >= deadline:
                break
            reply = await shards[shard].execute_command("SCAN", scan_cursor, "MATCH", pattern,
                                                        "COUNT", SCAN_COUNT)
            following, batch = int(reply[0]), reply[1]
            taken = await self._collect(self.cold_client, batch, after, wanted, limit, found)
            if taken is not None:
                return found, f"{shard}.{scan_cursor}.{taken.hex()}"
            after, scan_cursor = None, following
            if scan_cursor == 0:
                shard += 1
        next_cursor = f"{shard}.{scan_cursor}.0" if shard < len(shards) else None
        return found, next_cursor

    async def _export_page(self, cursor: str | None,
                           count: int) -> tuple[list[ExportRow], str | None]:
        """A listing page (``_scan``) whose cursor also names the primaries and their
        run ids, read before and after it: a shard's SCAN cursor means nothing to another
        process (a replica promoted by a failover, a restarted node), where resuming it
        could skip keys that a mirror would then never hold. A page that meets another
        set of primaries raises ``StoreChanged`` and the load starts over."""
        expected, _, listing = (cursor or "").rpartition("/")
        before = await self._primaries_signature()
        rows, following = await super()._export_page(listing or None, count)
        after = await self._primaries_signature()
        if after != before or (cursor and before != expected):
            raise StoreChanged("the cluster's primaries changed during an export: it "
                               "starts over")
        return rows, (None if following is None else f"{before}/{following}")

    async def _primaries_signature(self) -> str:
        """A digest of every primary's address and run id, in slot order."""
        await self._ensure_initialized(self.cold_client)
        seen = []
        for node in self._shards():
            info = _as_dict(await node.execute_command("INFO", "server"))
            seen.append(f"{node.name}={_text(info.get('run_id', ''))}")
        return hashlib.blake2b(" ".join(seen).encode(), digest_size=8).hexdigest()

    async def _ensure_initialized(self, client: Any) -> None:
        """Node-level commands bypass the cluster client's own topology handling: load
        the topology on first use, and read it again when an earlier failure marked it
        stale (``_topology_stale``)."""
        await client.initialize()  # a no-op once initialized
        if id(client) in self._stale:
            self._stale.discard(id(client))
            await client.nodes_manager.initialize()

    # -- health ------------------------------------------------------------------------

    async def _eviction_policy(self) -> str:
        """The first policy other than noeviction found on any primary (the topology is
        read first: this is the first call ``open`` makes)."""
        await self.client.initialize()
        await self.cold_client.initialize()
        for node in self._shards():
            info = _as_dict(await node.execute_command("INFO", "memory"))
            policy = _text(info.get("maxmemory_policy", "unknown"))
            if policy != "noeviction":
                return policy
        return "noeviction"

    async def _health(self) -> StoreHealth:
        """Cluster state, and per primary: persistence, replicas, eviction."""
        cluster = await self.cold_client.cluster_info()
        state = _text(cluster.get("cluster_state", "unknown"))
        await self._ensure_initialized(self.cold_client)
        shards = []
        warnings: list[str] = []
        for node in self._shards():
            info = _as_dict(await node.execute_command("INFO"))
            detail, node_warnings = _describe(info)
            detail.pop("backend", None)
            detail["rdb_save"] = await _rdb_save(node)
            shards.append({"node": node.name, **detail})
            warnings += [f"{node.name}: {w}" for w in node_warnings]
            if not detail["aof_enabled"] and not detail["rdb_save"]:
                warnings.append(f"{node.name}: Redis persistence is off (no AOF, no RDB): "
                                "a restart of this shard without its replica loses revocations")
            if self.wait_replicas and detail["connected_replicas"] < self.wait_replicas:
                warnings.append(f"{node.name}: REVOKER_REDIS_WAIT_REPLICAS="
                                f"{self.wait_replicas} but only {detail['connected_replicas']} "
                                "replicas are connected")
        ok = state == "ok"
        detail_all: dict[str, Any] = {"backend": "redis+cluster", "cluster_state": state,
                                      "slots_ok": int(cluster.get("cluster_slots_ok", 0)),
                                      "primaries": shards}
        return StoreHealth(ok=ok, detail=detail_all, warnings=warnings)


async def _rdb_save(node: ClusterNode) -> str | None:
    """The node's ``save`` setting; None where CONFIG is disabled (managed Redis)."""
    try:
        reply = await node.execute_command("CONFIG", "GET", "save")
    except rex.ResponseError:
        return None
    if isinstance(reply, dict):
        return _text(reply.get(b"save", reply.get("save", b"")))
    return _text(reply[1]) if len(reply) > 1 else ""


def _as_dict(info: Any) -> dict[Any, Any]:
    """A node's INFO reply, already parsed by the client's response callbacks."""
    if isinstance(info, dict):
        return info
    raise StoreError("unexpected INFO reply from a cluster node")


#: ``shard.scan-cursor.after`` (see ``SCAN_CURSOR_RE``); a SCAN cursor is unsigned 64-bit.
CLUSTER_CURSOR_RE: Final = re.compile(r"([0-9]{1,4})\.([0-9]{1,20})\.(0|[0-9a-f]{32})",
                                      re.ASCII)


def _decode_cluster_cursor(cursor: str | None) -> tuple[int, int, bytes | None]:
    if not cursor:
        return 0, 0, None
    match = CLUSTER_CURSOR_RE.fullmatch(cursor)
    if match is None or int(match[2]) > U64_MAX:
        raise InvalidInput("cursor is not one this service returned", field="cursor")
    return int(match[1]), int(match[2]), decode_after(match[3])
