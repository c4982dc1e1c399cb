"""``GET /v1/whoami`` names the presented key and its scopes, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import ADMIN_KEY, CHECK_KEY, REVOKE_KEY, MakeClient, auth

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(("key", "name", "scopes"), [
    (ADMIN_KEY, "admin-console", ["admin"]),
    (REVOKE_KEY, "logout-hook", ["revoke"]),
    (CHECK_KEY, "gateway", ["check"]),
])
async def test_names_the_key(client: Any, key: str, name: str, scopes: list[str]) -> None:
    resp = await client.get("/v1/whoami", headers=auth(key))
    assert resp.status == 200
    assert await resp.json() == {"name": name, "scopes": scopes}
    assert resp.headers["Cache-Control"] == "no-store"
    resp = await client.get("/v1/whoami", headers={"X-Revoker-Key": key})
    assert (await resp.json())["name"] == name


@pytest.mark.parametrize("headers", [{}, auth("rvk_not_a_configured_key"),
                                     {"Authorization": "Basic YTpi"}])
async def test_needs_a_valid_key(client: Any, headers: dict[str, str]) -> None:
    resp = await client.get("/v1/whoami", headers=headers)
    assert resp.status == 401 and resp.content_type == PROBLEM
    assert "WWW-Authenticate" in resp.headers
    assert "rvk_not_a_configured_key" not in await resp.text()


async def test_open_checks_do_not_make_anyone_somebody(make_client: MakeClient) -> None:
    client = await make_client("memory://", REVOKER_CHECK_AUTH="none")
    resp = await client.get("/v1/whoami")
    assert resp.status == 401


async def test_unknown_query_parameter_is_400(client: Any) -> None:
    resp = await client.get("/v1/whoami?debug=1", headers=auth())
    assert resp.status == 400 and resp.content_type == PROBLEM
