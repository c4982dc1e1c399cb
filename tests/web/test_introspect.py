"""POST /oauth2/introspect (RFC 7662): who may ask, what an answer holds, and failure modes."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest

from tests.jwt_factory import AUDIENCE, ISSUER, KeySet
from tests.redis_proc import RedisProcess
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, auth

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures

CLIENT_ID = "resource-server"
CLIENT_SECRET = "s3cret:with/odd chars"
URL = "/oauth2/introspect"


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 2.3.1: form-urlencode each part, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def oauth_env(jwt_env: dict[str, str]) -> dict[str, str]:
    digest = hashlib.sha256(CLIENT_SECRET.encode()).hexdigest()
    other = hashlib.sha256(b"other").hexdigest()
    return {**jwt_env, "REVOKER_OAUTH_CLIENTS": f"{CLIENT_ID}:{digest},other-client:{other}"}


async def test_active_token_carries_standard_claims(make_client: Any, store_url: str,
                                                    jwt_env: dict[str, str],
                                                    keyset: KeySet) -> None:
    client = await make_client(store_url, **jwt_env)
    token = keyset.token(jti="i-1", scope="read write", azp="spa", sid="s-1", email="a@x")
    resp = await client.post(URL, data={"token": token, "token_type_hint": "access_token"},
                             headers=auth(CHECK_KEY))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["active"] is True
    assert body["jti"] == "i-1" and body["sub"] == "alice" and body["scope"] == "read write"
    assert body["iss"] == ISSUER and body["aud"] == AUDIENCE
    assert body["client_id"] == "spa" and body["token_type"] == "Bearer"
    assert {"exp", "iat"} <= set(body)
    assert "email" not in body and "sid" not in body


async def test_claims_that_cannot_be_json_are_left_out(make_client: Any,
                                                       jwt_env: dict[str, str],
                                                       keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    token = keyset.token(scope="bad \ud800 scope", username=[10**30], aud=[AUDIENCE, "b"])
    resp = await client.post(URL, data={"token": token}, headers=auth(CHECK_KEY))
    assert resp.status == 200
    body = await resp.json()
    assert body["active"] is True and body["aud"] == [AUDIENCE, "b"]
    assert "scope" not in body and "username" not in body


async def test_revoked_and_invalid_tokens_are_inactive_and_nothing_else(
        make_client: Any, store_url: str, jwt_env: dict[str, str], keyset: KeySet) -> None:
    client = await make_client(store_url, **jwt_env)
    token = keyset.token(jti="i-revoked")
    resp = await client.post("/v1/revocations", json={"kind": "jti", "value": "i-revoked"},
                             headers=auth(ADMIN_KEY))
    assert resp.status == 201
    for candidate in (token, "garbage", keyset.token(iss="https://evil.test")):
        resp = await client.post(URL, data={"token": candidate}, headers=auth(CHECK_KEY))
        assert resp.status == 200
        assert await resp.json() == {"active": False}


async def test_oauth_client_by_http_basic(make_client: Any, oauth_env: dict[str, str],
                                          keyset: KeySet) -> None:
    client = await make_client(**oauth_env)
    resp = await client.post(URL, data={"token": keyset.token()},
                             headers=basic(CLIENT_ID, CLIENT_SECRET))
    assert resp.status == 200 and (await resp.json())["active"] is True


@pytest.mark.parametrize("headers", [
    basic(CLIENT_ID, "wrong"),
    basic("unknown", CLIENT_SECRET),
    basic("other-client", CLIENT_SECRET),  # a valid secret of another client
    {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
])
async def test_bad_client_credentials_are_invalid_client(make_client: Any,
                                                         oauth_env: dict[str, str],
                                                         keyset: KeySet,
                                                         headers: dict[str, str]) -> None:
    client = await make_client(**oauth_env)
    resp = await client.post(URL, data={"token": keyset.token()}, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    body = await resp.json()
    assert body["error"] == "invalid_client"


async def test_api_key_failures(make_client: Any, jwt_env: dict[str, str],
                                keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    resp = await client.post(URL, data={"token": keyset.token()})
    assert resp.status == 401 and resp.content_type == "application/problem+json"
    resp = await client.post(URL, data={"token": keyset.token()}, headers=auth("nope"))
    assert resp.status == 401
    resp = await client.post(URL, data={"token": keyset.token()},
                             headers={"X-Revoker-Key": CHECK_KEY})
    assert resp.status == 200


async def test_bad_requests(make_client: Any, jwt_env: dict[str, str]) -> None:
    client = await make_client(**jwt_env)
    resp = await client.post(URL, data={"nottoken": "x"}, headers=auth(CHECK_KEY))
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    resp = await client.post(URL, json={"token": "x"}, headers=auth(CHECK_KEY))
    assert resp.status == 415
    resp = await client.get(URL, headers=auth(CHECK_KEY))
    assert resp.status == 405


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_unknown_revocation_state_is_never_active(make_client: Any,
                                                        own_redis: RedisProcess,
                                                        jwt_env: dict[str, str],
                                                        keyset: KeySet, fail_mode: str) -> None:
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2",
                               REVOKER_FAIL_MODE=fail_mode, **jwt_env)
    token = keyset.token()
    own_redis.kill()
    resp = await client.post(URL, data={"token": token}, headers=auth(CHECK_KEY))
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "active" not in await resp.json()
