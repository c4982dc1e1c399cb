"""``/metrics``: names, labels without secrets or unbounded values, and the counts behind them.

The process-wide registry is shared by every test, so each test compares before and after.
Several worker processes are covered by tests/integration/test_serve.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from revoker import metrics
from revoker.active import Sampler
from revoker.store.memory import MemoryStore
from revoker.web.state import STORE
from tests.redis_proc import RedisProcess
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, MakeClient, auth, scrape, value


async def test_metrics_need_no_key_and_name_every_family(client: Any) -> None:
    text, samples = await scrape(client)
    for family in ("revoker_http_requests_total", "revoker_http_request_duration_seconds",
                   "revoker_checks_total", "revoker_revocations_total",
                   "revoker_store_operation_duration_seconds", "revoker_store_errors_total",
                   "revoker_fail_open_total", "revoker_token_rejections_total",
                   "revoker_revocations_active", "revoker_build_info"):
        assert f"# TYPE {family} " in text, family
    assert value(samples, "revoker_build_info") == 1
    assert "_created" not in text, "created series are disabled"


async def test_requests_revocations_and_checks_are_counted(client: Any) -> None:
    _, before = await scrape(client)
    resp = await client.post("/v1/revocations", headers=auth(ADMIN_KEY),
                             json={"kind": "jti", "value": "m-1", "ttl": 600})
    assert resp.status == 201
    for jti in ("m-1", "m-2", "m-3"):
        resp = await client.get(f"/v1/check/{jti}", headers=auth(CHECK_KEY))
        assert resp.status == 200
    _, after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("revoker_http_requests_total", route="/v1/check/{jti}", method="GET",
                 status="200") == 3
    assert delta("revoker_http_requests_total", route="/v1/revocations", method="POST",
                 status="201") == 1
    assert delta("revoker_http_request_duration_seconds_count", route="/v1/check/{jti}") == 3
    assert delta("revoker_revocations_total", kind="jti", source="api") == 1
    assert delta("revoker_checks_total", result="revoked") == 1
    assert delta("revoker_checks_total", result="ok") == 2
    assert delta("revoker_store_operation_duration_seconds_count", operation="lookup") == 3
    assert delta("revoker_store_operation_duration_seconds_count", operation="upsert") == 1


async def test_labels_carry_route_templates_never_values_or_secrets(client: Any) -> None:
    secret_jti = "jti-that-must-not-become-a-label-7f3a"
    await client.get(f"/v1/check/{secret_jti}", headers=auth(CHECK_KEY))
    await client.get(f"/v1/check/{secret_jti}", headers=auth("rvk_wrong_key_material_55aa"))
    await client.get(f"/no/such/{secret_jti}")
    text, samples = await scrape(client)
    for forbidden in (secret_jti, CHECK_KEY, "rvk_wrong_key_material_55aa"):
        assert forbidden not in text
    routes = {dict(labels).get("route") for (name, labels) in samples
              if name == "revoker_http_requests_total"}
    assert "unmatched" in routes and "/v1/check/{jti}" in routes
    assert all(route == "unmatched" or route.startswith("/") for route in routes if route)
    assert value(samples, "revoker_http_requests_total", route="/v1/check/{jti}",
                 status="401") >= 1


async def test_latency_buckets_resolve_sub_millisecond_checks(client: Any) -> None:
    await client.get("/healthz")
    _, samples = await scrape(client)
    bounds = {float(dict(labels)["le"]) for (name, labels) in samples
              if name == "revoker_http_request_duration_seconds_bucket"}
    assert {0.0001, 0.00025, 0.0005, 0.001} <= bounds
    assert min(metrics.LATENCY_BUCKETS) <= 0.0001


async def test_store_failure_counts_errors_and_fail_open(make_client: MakeClient) -> None:
    redis = RedisProcess().start()
    try:
        client = await make_client(redis.url, REVOKER_FAIL_MODE="open",
                                   REVOKER_STORE_TIMEOUT="0.2")
        _, before = await scrape(client)
        redis.stop()
        resp = await client.get("/v1/check/anything", headers=auth(CHECK_KEY))
        assert resp.status == 200
        _, after = await scrape(client)
    finally:
        redis.stop()
    for name, labels in (("revoker_fail_open_total", {}),
                         ("revoker_checks_total", {"result": "error"}),
                         ("revoker_store_errors_total", {"operation": "lookup"})):
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name


async def test_active_revocations_are_sampled_in_the_background(make_client: MakeClient,
                                                               store_url: str) -> None:
    client = await make_client(store_url)
    wanted = {"jti": 3, "sub": 2, "sid": 1}
    for kind, count in wanted.items():
        for i in range(count):
            resp = await client.post("/v1/revocations", headers=auth(ADMIN_KEY),
                                     json={"kind": kind, "value": f"{kind}-{i}", "ttl": 600})
            assert resp.status == 201
    before = time.time()
    # Unpaced: on Redis a page is one SCAN step (COUNT page_size) over a server that other
    # tests fill with their own keys, so a walk may take many pages, most of them empty.
    sampler = Sampler(client.app[STORE], page_size=200, page_pause_s=0, share=1.0)
    counts = await sampler.sample_once()
    assert counts == {"jti": 3, "sub": 2, "sid": 1, "kid": 0, "client": 0}
    _, samples = await scrape(client)
    for kind, count in counts.items():
        assert value(samples, "revoker_revocations_active", kind=kind) == count
    assert value(samples, "revoker_revocations_active_sampled_timestamp_seconds") >= before


def test_a_walk_keeps_to_a_tenth_of_the_time_while_it_runs() -> None:
    """Paced page by page, not in a burst followed by a long rest: a page that took 20 ms
    is followed by 180 ms of rest; a quick page still waits the minimum pause."""
    sampler = Sampler(MemoryStore(prefix="t:", timeout_s=1, events_maxlen=10))
    assert sampler.pause_after(0.02) == pytest.approx(0.18)
    assert sampler.pause_after(0.0) == sampler.page_pause_s
    assert Sampler(sampler.store, share=1.0, page_pause_s=0).pause_after(5.0) == 0


async def test_scrapes_do_not_touch_the_store(make_client: MakeClient) -> None:
    """A scrape costs no Redis command at all (no SCAN, no KEYS): the gauge is sampled."""
    redis = RedisProcess().start()
    try:
        client = await make_client(redis.url)
        calls_before = _commands(redis)
        for _ in range(5):
            await scrape(client)
        assert _commands(redis) - calls_before <= 1  # the INFO that measures it
    finally:
        redis.stop()


async def test_a_walk_reads_names_not_records(make_client: MakeClient) -> None:
    """The gauge needs each record's kind, which its key names: a walk on Redis is SCAN
    alone, with no value read (no GET, no script), whatever the records hold."""
    redis = RedisProcess().start()
    try:
        client = await make_client(redis.url)
        for i in range(5):
            resp = await client.post("/v1/revocations", headers=auth(ADMIN_KEY),
                                     json={"kind": "sub", "value": f"user-{i}", "ttl": 600,
                                           "reason": "a reason to parse"})
            assert resp.status == 201
        redis.cli("CONFIG", "RESETSTAT")
        counts = await Sampler(client.app[STORE], page_size=2, page_pause_s=0).sample_once()
        assert counts["sub"] == 5
        called = _called(redis)
        assert "scan" in called
        assert not called & {"get", "mget", "evalsha", "eval", "expiretime", "ttl"}, called
    finally:
        redis.stop()


def _called(redis: RedisProcess) -> set[str]:
    """The commands Redis ran since its stats were last reset (``INFO commandstats``)."""
    info = redis.cli("INFO", "commandstats").decode()
    return {line.split(":")[0].removeprefix("cmdstat_")
            for line in info.splitlines() if line.startswith("cmdstat_")}


def _commands(redis: RedisProcess) -> int:
    info = redis.cli("INFO", "stats").decode()
    for line in info.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    pytest.fail("no total_commands_processed in INFO")


async def test_unusual_methods_do_not_create_series(client: Any) -> None:
    for method in ("FOOBAR", "XYZZY1", "PROPFIND"):
        resp = await client.request(method, "/v1/authz", headers={"X-Revoker-Key": CHECK_KEY})
        assert resp.status < 500
    _, samples = await scrape(client)
    methods = {dict(labels)["method"] for (name, labels) in samples
               if name == "revoker_http_requests_total"}
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
