"""What is particular to Redis Sentinel (the shared cases run in test_behaviour.py)."""

from __future__ import annotations

from typing import Any

import pytest

from revoker.errors import ConfigError, StoreError
from revoker.store.sentinel import SentinelStore, parse_multi_host
from tests.redis_sentinel import MASTER_NAME, SentinelGroup
from tests.store.conftest import record

pytestmark = pytest.mark.redis


@pytest.mark.slow
async def test_health_names_the_primary_the_sentinels_chose(sentinels: SentinelGroup,
                                                            prefix: str) -> None:
    store = SentinelStore(sentinels.url, prefix=prefix, timeout_s=2.0, events_maxlen=10)
    await store.open()
    try:
        health = await store.health()
    finally:
        await store.close()
    assert health.detail["backend"] == "redis+sentinel"
    assert health.detail["sentinel"]["primary"] == f"127.0.0.1:{sentinels.primary.port}"
    assert health.detail["sentinel"]["healthy_replicas"] == 1
    assert health.detail["connected_replicas"] == 1


def test_url_carries_credentials_tls_and_sentinel_auth() -> None:
    parsed = parse_multi_host(
        "rediss+sentinel://app:s%40cret@h1:26379,h2/mymaster/2?ssl_ca_certs=/ca.pem"
        "&sentinel_password=sp", default_port=26379)
    assert parsed.hosts == (("h1", 26379), ("h2", 26379))
    assert parsed.path == ("mymaster", "2")
    assert parsed.auth() == {"username": "app", "password": "s@cret"}
    assert parsed.ssl() == {"ssl": True, "ssl_ca_certs": "/ca.pem"}
    assert parsed.query["sentinel_password"] == "sp"
    assert "s@cret" not in repr(parsed)


def test_url_without_master_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="master name"):
        SentinelStore("redis+sentinel://h1:26379", prefix="p:", timeout_s=1, events_maxlen=10)
    with pytest.raises(ConfigError, match="bad host:port"):
        SentinelStore("redis+sentinel://h1:notaport/m", prefix="p:", timeout_s=1,
                      events_maxlen=10)


async def test_password_protected_sentinel_group_is_reached(prefix: str) -> None:
    """ACL user and password in the URL reach the data nodes; sentinels have their own."""
    group = SentinelGroup(data_args=["--requirepass", "pw-data"], primary_auth="pw-data",
                          sentinel_password="pw-sentinel")
    group.start(wait_peers=False)
    try:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in group.sentinels)
        url = f"redis+sentinel://default:pw-data@{hosts}/{MASTER_NAME}" \
              "?sentinel_password=pw-sentinel"
        store = SentinelStore(url, prefix=prefix, timeout_s=2.0, events_maxlen=10)
        await store.open()
        try:
            assert (await store.upsert(record("jti", "authed"), at=1)).created
        finally:
            await store.close()
        bad = SentinelStore(url.replace("pw-data", "wrong"), prefix=prefix, timeout_s=2.0,
                            events_maxlen=10)
        with pytest.raises(StoreError):
            await bad.open()
        await bad.close()
    finally:
        group.stop()


async def test_tls_sentinel_group_is_reached(tmp_path: Any, prefix: str) -> None:
    """``rediss+sentinel://``: TLS to the sentinels and to the primary, CA from the URL."""
    from tests.tls_certs import make_tls_files

    tls = make_tls_files(tmp_path)
    group = SentinelGroup(tls=tls)
    group.start(wait_peers=False)
    try:
        store = SentinelStore(f"{group.url}?ssl_ca_certs={tls.ca}", prefix=prefix,
                              timeout_s=2.0, events_maxlen=10)
        await store.open()
        try:
            assert (await store.upsert(record("jti", "over-tls"), at=1)).created
            health = await store.health()
            assert health.detail["sentinel"]["primary"] == f"127.0.0.1:{group.primary.port}"
        finally:
            await store.close()
        plain = SentinelStore(group.url.replace("rediss+", "redis+"), prefix=prefix,
                              timeout_s=1.0, events_maxlen=10)
        with pytest.raises(StoreError):
            await plain.open()
        await plain.close()
    finally:
        group.stop()
