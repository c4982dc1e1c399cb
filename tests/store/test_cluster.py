"""The store on a real 3-primary/3-replica Redis Cluster (cases in ``ha_cases``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from revoker.errors import StoreError
from revoker.store.cluster import ClusterStore
from revoker.store.redis import RedisStore
from tests.redis_cluster import RedisClusterGroup
from tests.store.ha_cases import HaCases, MakeStore, store_factory

pytestmark = pytest.mark.redis


class TestClusterStore(HaCases):
    """The shared Sentinel/Cluster cases (tests/store/ha_cases.py) on this backend."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup().start()
    yield group
    group.stop()


@pytest.fixture
async def make_ha_store(cluster: RedisClusterGroup, prefix: str) -> AsyncIterator[MakeStore]:
    async with store_factory(ClusterStore, cluster.url, prefix) as factory:
        yield factory


@pytest.fixture
async def ha_store(make_ha_store: MakeStore) -> RedisStore:
    return await make_ha_store()


async def test_records_really_spread_over_several_primaries(ha_store: RedisStore) -> None:
    keys = [ha_store.key("jti", f"spread-{i}") for i in range(30)]
    nodes = {ha_store.client.get_node_from_key(k).name for k in keys}
    assert len(nodes) == 3


async def test_events_stream_lives_in_one_slot_apart_from_records(ha_store: RedisStore) -> None:
    assert ha_store.same_slot_events is False
    await ha_store.upsert_many([_rec(f"ev-{i}") for i in range(10)], at=5)
    events = await ha_store.events(after=None, limit=100)
    assert sorted(e.record.value for e in events) == sorted(f"ev-{i}" for i in range(10))


def test_url_without_hosts_is_a_config_error() -> None:
    from revoker.errors import ConfigError

    with pytest.raises(ConfigError, match="REVOKER_STORE_URL"):
        ClusterStore("redis+cluster:///", prefix="p:", timeout_s=1, events_maxlen=10)
    with pytest.raises(ConfigError, match="unknown URL option"):
        ClusterStore("redis+cluster://h:7000?bogus=1", prefix="p:", timeout_s=1,
                     events_maxlen=10)


def _rec(value: str) -> Any:
    from tests.store.ha_cases import record

    return record("jti", value)


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
            from tests.store.ha_cases import record

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
