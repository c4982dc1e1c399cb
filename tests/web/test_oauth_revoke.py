"""POST /oauth2/revoke: RFC 7009 conformance, client by client."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest

from tests.jwt_factory import KeySet, rsa_key
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, REVOKE_KEY, auth, stored

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures

WEB_SECRET = "web-app-secret"
FORM = "application/x-www-form-urlencoded"


def basic(client_id: str = "web-app", secret: str = WEB_SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def oauth_env(jwt_env: dict[str, str]) -> dict[str, str]:
    digest = hashlib.sha256(WEB_SECRET.encode()).hexdigest()
    other = hashlib.sha256(b"other-secret").hexdigest()
    return {**jwt_env, "REVOKER_OAUTH_CLIENTS": f"web-app:{digest},mobile:{other}"}


async def revoke(client: Any, headers: dict[str, str], **form: str) -> Any:
    return await client.post("/oauth2/revoke", data=form, headers=headers)



async def test_client_revokes_its_own_token(make_client: Any, store_url: str,
                                            oauth_env: dict[str, str], keyset: KeySet):
    client = await make_client(store_url, **oauth_env)
    exp = int(time.time()) + 300
    token = keyset.token(jti="own-1", client_id="web-app", exp=exp)
    resp = await revoke(client, basic(), token=token, token_type_hint="access_token")
    assert resp.status == 200
    assert await resp.read() == b""
    assert resp.headers["Cache-Control"] == "no-store"
    rec = await stored(client, "jti", "own-1")
    assert rec is not None and rec["expires_at"] == exp + 30 and rec["actor"] == "web-app"
    again = await revoke(client, basic(), token=token)  # already revoked: still 200
    assert again.status == 200


async def test_azp_identifies_the_client_too(make_client: Any, oauth_env: dict[str, str],
                                             keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, basic(), token=keyset.token(jti="azp-1", azp="web-app"))
    assert resp.status == 200
    assert await stored(client, "jti", "azp-1") is not None


async def test_another_clients_token_is_refused(make_client: Any, oauth_env: dict[str, str],
                                                keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    for token in (keyset.token(jti="theirs", client_id="mobile"), keyset.token(jti="nobody")):
        resp = await revoke(client, basic(), token=token)
        assert resp.status == 400
        assert (await resp.json())["error"] == "unauthorized_client"
    assert await stored(client, "jti", "theirs") is None
    assert await stored(client, "jti", "nobody") is None


async def test_admin_key_revokes_any_token_revoke_key_only_its_own(
        make_client: Any, oauth_env: dict[str, str], keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, auth(ADMIN_KEY), token=keyset.token(jti="a1", client_id="mobile"))
    assert resp.status == 200 and await stored(client, "jti", "a1") is not None
    mine = keyset.token(jti="k1", client_id="logout-hook")  # the revoke key's name
    assert (await revoke(client, auth(REVOKE_KEY), token=mine)).status == 200
    assert await stored(client, "jti", "k1") is not None
    theirs = await revoke(client, auth(REVOKE_KEY), token=keyset.token(jti="k2",
                                                                      client_id="mobile"))
    assert theirs.status == 400 and await stored(client, "jti", "k2") is None


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 20000])
async def test_invalid_tokens_get_200_and_store_nothing(make_client: Any, token: str,
                                                        oauth_env: dict[str, str]):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, basic(), token=token)
    assert resp.status == 200
    listing = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    assert (await listing.json())["items"] == []


async def test_expired_and_foreign_signed_tokens_get_200_and_store_nothing(
        make_client: Any, oauth_env: dict[str, str], keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    now = int(time.time())
    expired = keyset.token(jti="old", client_id="web-app", iat=now - 900, exp=now - 600)
    stranger = KeySet(rsa=rsa_key())
    forged = stranger.token(jti="forged", client_id="web-app")  # right kid, wrong key
    for token in (expired, forged):
        assert (await revoke(client, basic(), token=token)).status == 200
    assert await stored(client, "jti", "old") is None
    assert await stored(client, "jti", "forged") is None


async def test_unknown_hint_is_ignored(make_client: Any, oauth_env: dict[str, str],
                                       keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, basic(), token=keyset.token(jti="h1", client_id="web-app"),
                        token_type_hint="id_token_of_the_future")
    assert resp.status == 200 and await stored(client, "jti", "h1") is not None


async def test_refresh_token_also_revokes_its_session(make_client: Any,
                                                      oauth_env: dict[str, str],
                                                      keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    refresh = keyset.token(jti="rt-1", client_id="web-app", sid="sess-9", typ="Refresh")
    assert (await revoke(client, basic(), token=refresh)).status == 200
    assert await stored(client, "sid", "sess-9") is not None
    access = keyset.token(jti="at-1", client_id="web-app", sid="sess-10")
    assert (await revoke(client, basic(), token=access)).status == 200
    assert await stored(client, "sid", "sess-10") is None  # an access token: jti only
    hinted = keyset.token(jti="rt-2", client_id="web-app", sid="sess-11")
    await revoke(client, basic(), token=hinted, token_type_hint="refresh_token")
    assert await stored(client, "sid", "sess-11") is not None


async def test_missing_token_is_invalid_request(make_client: Any, oauth_env: dict[str, str]):
    client = await make_client("memory://", **oauth_env)
    for form in ({}, {"token": ""}, {"token_type_hint": "access_token"}):
        resp = await revoke(client, basic(), **form)
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


async def test_wrong_content_type_is_invalid_request(make_client: Any,
                                                     oauth_env: dict[str, str],
                                                     keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    resp = await client.post("/oauth2/revoke", json={"token": keyset.token(jti="j")},
                             headers=basic())
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"


@pytest.mark.parametrize("headers", [
    {},
    basic(secret="wrong"),
    basic(client_id="unknown"),
    {"Authorization": "Basic !!!notbase64"},
    auth("rvk_unknown_key"),
])
async def test_bad_client_authentication_is_invalid_client(make_client: Any,
                                                           oauth_env: dict[str, str],
                                                           keyset: KeySet,
                                                           headers: dict[str, str]):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, headers, token=keyset.token(jti="nope", client_id="web-app"))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert (await resp.json())["error"] == "invalid_client"
    assert await stored(client, "jti", "nope") is None


async def test_check_only_key_may_not_revoke(make_client: Any, oauth_env: dict[str, str],
                                             keyset: KeySet):
    client = await make_client("memory://", **oauth_env)
    resp = await revoke(client, auth(CHECK_KEY), token=keyset.token(jti="c", client_id="gateway"))
    assert resp.status == 403
    assert await stored(client, "jti", "c") is None


async def test_only_post(make_client: Any, oauth_env: dict[str, str]):
    client = await make_client("memory://", **oauth_env)
    assert (await client.get("/oauth2/revoke", headers=basic())).status == 405
