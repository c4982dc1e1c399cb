"""POST /v1/logout: the user's own, validated token revokes itself (and its sub)."""

from __future__ import annotations

import time
from typing import Any

from tests.jwt_factory import KeySet
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, auth, stored

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures


def user(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}



async def test_logout_revokes_the_jti_until_exp(make_client: Any, store_url: str,
                                                jwt_env: dict[str, str], keyset: KeySet):
    client = await make_client(store_url, **jwt_env)
    exp = int(time.time()) + 600
    token = keyset.token(jti="bye-1", exp=exp)
    resp = await client.post("/v1/logout", headers=user(token))
    assert resp.status == 204
    assert resp.headers["Cache-Control"] == "no-store"
    rec = await stored(client, "jti", "bye-1")
    assert rec is not None and rec["expires_at"] == exp + 30 and rec["actor"] == "logout"
    assert await stored(client, "sub", "alice") is None
    authz = await client.get("/v1/authz", headers=fx.bearer(token))
    assert authz.status == 401 and "revoked" in authz.headers["WWW-Authenticate"]


async def test_logout_everywhere_also_revokes_the_sub(make_client: Any, store_url: str,
                                                      jwt_env: dict[str, str], keyset: KeySet):
    client = await make_client(store_url, **jwt_env)
    other = keyset.token("ES256", sub="bob", jti="other-device", iat=int(time.time()) - 10)
    resp = await client.post("/v1/logout?everywhere=true",
                             headers=user(keyset.token(sub="bob", jti="this-device")))
    assert resp.status == 204
    rec = await stored(client, "sub", "bob")
    assert rec is not None and abs(rec["issued_before"] - time.time()) < 5
    assert (await client.get("/v1/authz", headers=fx.bearer(other))).status == 401


async def test_logout_refuses_invalid_tokens_and_changes_nothing(
        make_client: Any, jwt_env: dict[str, str], keyset: KeySet):
    client = await make_client("memory://", **jwt_env)
    now = int(time.time())
    cases = {
        "missing token": {},
        "expired": user(keyset.token(jti="x1", iat=now - 900, exp=now - 600)),
        "wrong issuer": user(keyset.token(jti="x2", iss="https://evil.test")),
        "malformed token": user("not.a.jwt"),
    }
    for reason, headers in cases.items():
        resp = await client.post("/v1/logout", headers=headers)
        assert resp.status == 401, reason
        assert f'error_description="{reason}"' in resp.headers["WWW-Authenticate"]
    listing = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    assert (await listing.json())["items"] == []


async def test_revoked_token_cannot_log_out_again(make_client: Any, jwt_env: dict[str, str],
                                                  keyset: KeySet):
    """A revoked (e.g. stolen) token must not be able to end its owner's other sessions."""
    client = await make_client("memory://", **jwt_env)
    token = keyset.token(jti="twice", sub="carol")
    assert (await client.post("/v1/logout", headers=user(token))).status == 204
    again = await client.post("/v1/logout?everywhere=true", headers=user(token))
    assert again.status == 401
    assert await stored(client, "sub", "carol") is None


async def test_bad_everywhere_value_is_400(make_client: Any, jwt_env: dict[str, str],
                                           keyset: KeySet):
    client = await make_client("memory://", **jwt_env)
    resp = await client.post("/v1/logout?everywhere=maybe",
                             headers=user(keyset.token(jti="q")))
    assert resp.status == 400
    assert await stored(client, "jti", "q") is None
