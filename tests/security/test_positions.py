"""Malformed positions (event ids, ``Last-Event-ID``, list cursors) are the caller's 400.

Before, an id the store could not parse (``1-``, Arabic-Indic digits, a part above 2^64)
or a listing cursor past Redis's range reached Redis, which refused it: the answer was a
503 "store unavailable", a stream retried it forever, and the store-error metric rose as
if Redis were failing. Each must be refused before any store call.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.web.conftest import ADMIN_KEY, CHECK_KEY, MakeClient, auth
from tests.web.conftest import make_client as make_client  # the fixture, re-exported

pytestmark = pytest.mark.security

BAD_EVENT_IDS = [
    "1-",
    "-1",
    "1-2-3",
    "\u0661\u0662\u0663",                 # Arabic-Indic digits
    "\u00b9",                            # a superscript digit
    str(2**64),                          # ms above u64
    f"1-{2**64}",                        # seq above u64
    "99999999999999999999999999",
    "1_0",
    "0x10",
]
BAD_CURSORS = [
    "99999999999999999999.0",            # a SCAN cursor above u64
    f"{2**64}.0",
    "0.99999999999999999999",
    "\u0661.0",
    "1.",
    ".1",
    "1.2.3.4",
    "%%%not-a-cursor",
    "1-0",
    "a" * 200,
]


@pytest.fixture(params=["memory", "redis"])
async def api(request: pytest.FixtureRequest, make_client: MakeClient) -> TestClient[Any, Any]:
    if request.param == "memory":
        return await make_client("memory://")
    return await make_client(request.getfixturevalue("redis_server").url)


async def store_activity(client: TestClient[Any, Any]) -> tuple[float, float]:
    """(store errors, store operations) so far, from this process's /metrics."""
    text = await (await client.get("/metrics")).text()

    def total(pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern + r"\S* ([0-9.e+]+)", text))

    return (total(r"^revoker_store_errors_total"),
            total(r"(?m)^revoker_store_operation_duration_seconds_count"))


def _problem_400(resp_status: int, content_type: str) -> None:
    assert resp_status == 400
    assert content_type == "application/problem+json"


async def _store_untouched(api: TestClient[Any, Any], before: tuple[float, float]) -> None:
    errors, calls = await store_activity(api)
    assert errors == before[0], "a malformed position was counted as a store error"
    assert calls == before[1], "a malformed position reached the store"


@pytest.mark.parametrize("bad", BAD_EVENT_IDS)
async def test_malformed_after_on_events_is_400(api: TestClient[Any, Any], bad: str) -> None:
    before = await store_activity(api)
    resp = await api.get("/v1/events", params={"after": bad}, headers=auth(ADMIN_KEY))
    _problem_400(resp.status, resp.content_type)
    await _store_untouched(api, before)


@pytest.mark.parametrize("bad", BAD_EVENT_IDS)
async def test_malformed_last_event_id_on_stream_is_400(api: TestClient[Any, Any],
                                                        bad: str) -> None:
    before = await store_activity(api)
    headers = {**auth(CHECK_KEY), "Last-Event-ID": bad}
    async with api.get("/v1/events/stream", headers=headers) as resp:
        _problem_400(resp.status, resp.content_type)
    await _store_untouched(api, before)


@pytest.mark.parametrize("bad", BAD_EVENT_IDS)
async def test_malformed_after_on_stream_is_400(api: TestClient[Any, Any], bad: str) -> None:
    before = await store_activity(api)
    async with api.get("/v1/events/stream", params={"after": bad},
                       headers=auth(CHECK_KEY)) as resp:
        _problem_400(resp.status, resp.content_type)
    await _store_untouched(api, before)


@pytest.mark.parametrize("bad", BAD_CURSORS)
async def test_malformed_list_cursor_is_400(api: TestClient[Any, Any], bad: str) -> None:
    before = await store_activity(api)
    resp = await api.get("/v1/revocations", params={"cursor": bad}, headers=auth(ADMIN_KEY))
    _problem_400(resp.status, resp.content_type)
    await _store_untouched(api, before)


async def test_a_cursor_the_service_returned_still_works(api: TestClient[Any, Any]) -> None:
    items = [{"kind": "jti", "value": f"page-{i}", "ttl": 600} for i in range(5)]
    resp = await api.post("/v1/revocations/batch", json={"items": items},
                          headers=auth(ADMIN_KEY))
    assert resp.status == 200
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await api.get("/v1/revocations", params=params, headers=auth(ADMIN_KEY))
        assert page.status == 200
        body = await page.json()
        seen += [item["value"] for item in body["items"]]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(item["value"] for item in items)
