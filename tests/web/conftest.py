"""Web fixtures: an app on a real store behind aiohttp's test client, and API apikeys."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from revoker import apikeys
from revoker.config import Settings
from revoker.web.app import create_app
from tests.lane_server import LaneTestServer
from tests.redis_proc import RedisProcess

ADMIN_KEY = "rvk_test_admin_key_0123456789abcdef"
REVOKE_KEY = "rvk_test_revoke_key_0123456789abcdef"
CHECK_KEY = "rvk_test_check_key_0123456789abcdef"
KEYS_ENV = ",".join([
    apikeys.config_line("admin-console", ["admin"], ADMIN_KEY),
    apikeys.config_line("logout-hook", ["revoke"], REVOKE_KEY),
    apikeys.config_line("gateway", ["check"], CHECK_KEY),
])


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def stored(client: TestClient[Any, Any], kind: str, value: str) -> dict[str, Any] | None:
    """The stored record as the admin API returns it, or None when there is none."""
    resp = await client.get(f"/v1/revocations/{kind}/{value}", headers=auth(ADMIN_KEY))
    return await resp.json() if resp.status == 200 else None


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient[Any, Any]) -> tuple[str, Samples]:
    """``/metrics`` as text and as samples by (name, sorted labels)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, sample_labels), v in samples.items()
               if n == name and set(labels.items()) <= set(sample_labels))


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Web tests run once per backend unless they ask for ``memory_url`` / ``redis_url``."""
    if request.param == "memory":
        return "memory://"
    server: RedisProcess = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def make_client(prefix: str) -> AsyncIterator[MakeClient]:
    """``await make_client(store_url, REVOKER_X=...)``: a started app with those settings."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(store_url: str = "memory://", *, clock: Any = None, lane: bool = True,
                      customize: Callable[[web.Application], object] | None = None,
                      **env: str) -> TestClient[Any, Any]:
        """``lane=False`` serves the application as a plain ``AppRunner`` does (every
        request through the router); ``customize`` changes the app before it starts."""
        environ = {"REVOKER_STORE_URL": store_url, "REVOKER_API_KEYS": KEYS_ENV,
                   "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "false", **env}
        settings = Settings.from_env(environ)
        kwargs = {"clock": clock} if clock is not None else {}
        app = create_app(settings, **kwargs)
        if customize is not None:
            customize(app)
        client = TestClient(LaneTestServer(app) if lane else TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient, store_url: str) -> TestClient[Any, Any]:
    return await make_client(store_url)


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
