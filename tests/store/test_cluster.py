"""What is particular to Redis Cluster (the shared cases run in test_behaviour.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from revoker.errors import StoreError
from revoker.store.base import ExportRow, Store
from revoker.store.cluster import ClusterStore
from revoker.store.layer import StoreLayer
from revoker.store.mirror import MirrorStore
from revoker.store.shared import fingerprint
from tests.polling import eventually
from tests.redis_cluster import RedisClusterGroup
from tests.redis_proc import RedisProcess
from tests.store.conftest import record

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
async def cluster_store(cluster: RedisClusterGroup,
                        prefix: str) -> AsyncIterator[ClusterStore]:
    store = ClusterStore(cluster.url, prefix=prefix, timeout_s=2.0, events_maxlen=1000)
    await store.open()
    yield store
    await store.close()


async def test_records_really_spread_over_several_primaries(cluster: RedisClusterGroup,
                                                            cluster_store: ClusterStore) -> None:
    values = [f"spread-{i}" for i in range(30)]
    await cluster_store.upsert_many([record("jti", v) for v in values], at=1)
    holders = {cluster.node_for_slot_of(cluster_store.key("jti", v)).port for v in values}
    assert len(holders) == 3


async def test_a_stale_topology_is_read_again(cluster_store: ClusterStore) -> None:
    """After a connection failure the store re-reads the topology (through the cluster
    client's public node manager) and goes on working."""
    node = cluster_store.client.get_node_from_key(cluster_store.key("jti", "t"))
    cluster_store._topology_stale(node)
    assert (await cluster_store.upsert(record("jti", "t"), at=1)).created
    items, _ = await cluster_store.scan(limit=10)
    assert [r.value for r in items] == ["t"]


def test_url_without_hosts_is_a_config_error() -> None:
    from revoker.errors import ConfigError

    with pytest.raises(ConfigError, match="REVOKER_STORE_URL"):
        ClusterStore("redis+cluster:///", prefix="p:", timeout_s=1, events_maxlen=10)
    with pytest.raises(ConfigError, match="unknown URL option"):
        ClusterStore("redis+cluster://h:7000?bogus=1", prefix="p:", timeout_s=1,
                     events_maxlen=10)


async def test_readyz_reports_every_primary(cluster: RedisClusterGroup, prefix: str) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from revoker.config import Settings
    from revoker.web.app import create_app

    settings = Settings.from_env({"REVOKER_STORE_URL": cluster.url, "REVOKER_KEY_PREFIX": prefix,
                                  "REVOKER_REDIS_WAIT_REPLICAS": "1",
                                  "REVOKER_ACCESS_LOG": "false"})
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        response = await client.get("/readyz")
        assert response.status == 200
        body = await response.json()
    finally:
        await client.close()
    store = body["checks"]["store"]
    assert store["backend"] == "redis+cluster" and store["cluster_state"] == "ok"
    assert len(store["primaries"]) == 3
    for primary in store["primaries"]:
        assert primary["connected_replicas"] == 1
        assert primary["aof_enabled"] is False and primary["rdb_save"] == ""
    assert any("persistence is off" in w for w in body["warnings"])
    assert not any("WAIT_REPLICAS" in w for w in body["warnings"])


async def test_tls_and_password_cluster(tmp_path: Any, prefix: str) -> None:
    """``rediss+cluster://`` with a password: TLS to every node, the CA from the URL."""
    from tests.tls_certs import make_tls_files

    tls = make_tls_files(tmp_path)
    server_args = ["--port", "0", "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
                   "--tls-ca-cert-file", tls.ca, "--tls-auth-clients", "no",
                   "--tls-cluster", "yes", "--tls-replication", "yes",
                   "--requirepass", "pw-cluster", "--masterauth", "pw-cluster"]
    group = TlsClusterGroup(server_args, tls.ca)
    group.start()
    try:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in group.nodes[:3])
        url = f"rediss+cluster://default:pw-cluster@{hosts}?ssl_ca_certs={tls.ca}"
        store = ClusterStore(url, prefix=prefix, timeout_s=2.0, events_maxlen=100)
        await store.open()
        try:
            await store.upsert_many([record("jti", f"tls-{i}") for i in range(20)], at=1)
            found = await store.get_many([("jti", f"tls-{i}") for i in range(20)])
            assert all(r is not None for r in found)
        finally:
            await store.close()
        plain = ClusterStore(f"redis+cluster://default:pw-cluster@{hosts}", prefix=prefix,
                             timeout_s=1.0, events_maxlen=100)
        with pytest.raises(StoreError):
            await plain.open()
        await plain.close()
    finally:
        group.stop()


class TlsClusterGroup(RedisClusterGroup):
    """Nodes that listen only on TLS ports (``--port 0``), cluster bus and replication too."""

    def __init__(self, server_args: list[str], ca: str) -> None:
        super().__init__(extra_args=[], cli_args=["--tls", "--cacert", ca],
                         password="pw-cluster", scheme="rediss+cluster")
        for node in self.nodes:
            node.args = [*node.args, "--tls-port", str(node.port), *server_args]


async def test_refuses_a_primary_that_may_evict(cluster: RedisClusterGroup, prefix: str) -> None:
    from revoker.errors import ConfigError

    node = cluster.primary_nodes()[1]
    node.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        store = ClusterStore(cluster.url, prefix=prefix, timeout_s=2.0, events_maxlen=10)
        with pytest.raises(ConfigError, match="allkeys-lru"):
            await store.open()
        await store.close()
        accepting = ClusterStore(cluster.url, prefix=prefix, timeout_s=2.0, events_maxlen=10,
                                 allow_eviction=True)
        await accepting.open()
        await accepting.close()
    finally:
        node.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")


class HeldSecondPage(StoreLayer):
    """The store, with the second export page of a load held until ``released``."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.pages = 0
        self.held = asyncio.Event()
        self.released = asyncio.Event()

    async def export_page(self, *, cursor: str | None,
                          count: int) -> tuple[list[ExportRow], str | None]:
        self.pages += 1
        if self.pages == 2:
            self.held.set()
            await self.released.wait()
        return await self.inner.export_page(cursor=cursor, count=count)


def _serves_slot_zero(node: RedisProcess) -> bool:
    for line in node.cli("CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if "myself" in fields[2] and any(part.split("-")[0] == "0" for part in fields[8:]):
            return True
    return False


async def _mirror_load_across(prefix: str, disrupt: Callable[[RedisClusterGroup,
                                                               ClusterStore], Awaitable[None]],
                             *, extra_args: Sequence[str] = ()) -> None:
    """A mirror's load of 20,000 records from a cluster of its own, with ``disrupt`` done
    while its second page is held: the mirror must end with every record."""
    group = await asyncio.to_thread(RedisClusterGroup(extra_args=extra_args).start)
    store = ClusterStore(group.url, prefix=prefix, timeout_s=2.0, events_maxlen=1000)
    mirror: MirrorStore | None = None
    try:
        await store.open()
        values = [f"r{i}" for i in range(20_000)]
        for start in range(0, len(values), 2000):
            await store.upsert_many([record("jti", v) for v in values[start:start + 2000]],
                                    at=1)
        held = HeldSecondPage(store)
        mirror = MirrorStore(held, block_ms=200)
        await mirror.start()
        await asyncio.wait_for(held.held.wait(), 10)
        await disrupt(group, store)
        held.released.set()
        await eventually(lambda: mirror is not None and mirror.in_sync, timeout_s=60)
        assert mirror.keeper is not None and mirror.keeper.table is not None
        missing = [v for v in values
                   if mirror.keeper.table.find(fingerprint("jti", v)) is None]
        assert missing == []
    finally:
        if mirror is not None:
            await mirror.stop()
        await store.close()
        await asyncio.to_thread(group.stop)


def _first_primary(group: RedisClusterGroup) -> RedisProcess:
    """The primary serving slot 0: the shard a load scans first."""
    return next(n for n in group.primary_nodes() if _serves_slot_zero(n))


async def test_a_mirror_load_that_meets_a_failover_starts_over(prefix: str) -> None:
    """A replica is promoted in the middle of a mirror's load, and the store learns the
    new topology before its next page: resuming the shard's SCAN cursor on the promoted
    replica (another process, another table layout) could skip records the mirror would
    then never hold. The page is refused and the load starts over."""

    async def failover(group: RedisClusterGroup, store: ClusterStore) -> None:
        first = _first_primary(group)
        replica = next(n for n in group.nodes if n is not first and
                       f"master_port:{first.port}".encode() in n.cli("INFO", "replication"))
        replica.cli("CLUSTER", "FAILOVER")
        await eventually(lambda: b"role:master" in replica.cli("INFO", "replication"),
                         timeout_s=30)
        await asyncio.to_thread(group.wait_healthy)
        await store.cold_client.nodes_manager.initialize()  # e.g. after a MOVED elsewhere

    await _mirror_load_across(prefix, failover)


async def test_a_mirror_load_that_meets_a_restarted_primary_starts_over(prefix: str) -> None:
    """The primary being scanned restarts (from its AOF, same address) in the middle of a
    mirror's load. Its SCAN cursor means nothing to the new process, where resuming could
    skip records the mirror would then never hold: the mirror must end with every record
    (on standalone and Sentinel, export cursors name the server: test_fill.py)."""

    async def restart(group: RedisClusterGroup, store: ClusterStore) -> None:
        await asyncio.to_thread(_first_primary(group).restart)
        await asyncio.to_thread(group.wait_healthy)

    await _mirror_load_across(prefix, restart,
                              extra_args=["--appendonly", "yes", "--appendfsync", "always"])
