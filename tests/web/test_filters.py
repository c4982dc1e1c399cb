"""Finding things: ``GET /v1/revocations`` by value prefix and actor, ``GET /v1/events`` by
kind, value and actor, on every backend; paging keeps working with filters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import ADMIN_KEY, REVOKE_KEY, auth

PROBLEM = "application/problem+json"


async def revoke(client: Any, kind: str, value: str, key: str) -> None:
    resp = await client.post("/v1/revocations", json={"kind": kind, "value": value},
                             headers=auth(key))
    assert resp.status == 201, await resp.text()


async def all_items(client: Any, query: str) -> list[dict[str, Any]]:
    """Every record of a filtered listing, following the cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        resp = await client.get(f"/v1/revocations?{query}&limit=2{cursor}", headers=auth())
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        items += page["items"]
        if page["cursor"] is None:
            return items
        cursor = f"&cursor={page['cursor']}"
    raise AssertionError("the cursor never ended")


async def all_events(client: Any, query: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = ""
    for _ in range(100):
        resp = await client.get(f"/v1/events?{query}&limit=2{after}", headers=auth())
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        if not page["events"]:
            return events
        events += page["events"]
        after = f"&after={page['next']}"
    raise AssertionError("paging never ended")


@pytest.fixture
async def seeded(client: Any) -> Any:
    await revoke(client, "sub", "alice@example.com", ADMIN_KEY)
    await revoke(client, "sub", "alice.b@example.com", REVOKE_KEY)
    await revoke(client, "sub", "bob@example.com", ADMIN_KEY)
    await revoke(client, "sid", "alice-session", REVOKE_KEY)
    await revoke(client, "jti", "a*[?]", ADMIN_KEY)  # glob characters, matched literally
    resp = await client.delete("/v1/revocations/sub/bob@example.com", headers=auth())
    assert resp.status == 204
    return client


async def test_records_by_prefix_and_actor(seeded: Any) -> None:
    values = sorted(r["value"] for r in await all_items(seeded, "prefix=alice"))
    assert values == ["alice-session", "alice.b@example.com", "alice@example.com"]
    by_hook = await all_items(seeded, "prefix=alice&actor=logout-hook")
    assert sorted(r["value"] for r in by_hook) == ["alice-session", "alice.b@example.com"]
    only_sub = await all_items(seeded, "kind=sub&prefix=alice.")
    assert [r["value"] for r in only_sub] == ["alice.b@example.com"]


async def test_a_prefix_is_literal_not_a_glob(seeded: Any) -> None:
    assert [r["value"] for r in await all_items(seeded, "prefix=a*")] == ["a*[?]"]
    assert await all_items(seeded, "prefix=%5B") == []


async def test_events_by_kind_value_and_actor(seeded: Any) -> None:
    bob = await all_events(seeded, "value=bob@example.com")
    assert [e["type"] for e in bob] == ["revoked", "unrevoked"]
    sids = await all_events(seeded, "kind=sid")
    assert [e["record"]["value"] for e in sids] == ["alice-session"]
    hook = await all_events(seeded, "actor=logout-hook")
    assert sorted(e["record"]["value"] for e in hook) == ["alice-session",
                                                          "alice.b@example.com"]
    assert await all_events(seeded, "kind=jti&value=bob@example.com") == []


@pytest.mark.parametrize("query", ["kind=token", "prefix=", "actor=%00x", "value=" + "v" * 513,
                                   "limit=%D9%A1"])
async def test_a_bad_filter_is_400(client: Any, query: str) -> None:
    path = "/v1/events" if query.startswith("value") else "/v1/revocations"
    resp = await client.get(f"{path}?{query}", headers=auth())
    assert resp.status == 400 and resp.content_type == PROBLEM, await resp.text()


async def test_filters_need_admin(client: Any) -> None:
    for path in ("/v1/revocations?prefix=a", "/v1/events?value=a"):
        resp = await client.get(path, headers=auth(REVOKE_KEY))
        assert resp.status == 403
