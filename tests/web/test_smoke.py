from __future__ import annotations

import time

from tests.web.conftest import auth


async def test_revoke_then_check(client):
    exp = int(time.time()) + 600
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "abc",
                                                      "expires_at": exp}, headers=auth())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["expires_at"] == exp + 30
    resp = await client.get("/v1/check/abc", headers=auth())
    body = await resp.json()
    assert body["revoked"] is True
    assert body["record"]["actor"] == "admin-console"
