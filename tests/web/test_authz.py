"""/v1/authz: the forward-auth contract as nginx, Envoy and Traefik see it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from revoker.web.problem import UNAVAILABLE
from tests.jwt_factory import KeySet
from tests.redis_proc import RedisProcess
from tests.web import jwt_env as fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, auth
from tests.web.jwt_env import GATEWAY, bearer

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures


async def revoke(client: Any, **body: Any) -> None:
    resp = await client.post("/v1/revocations", json=body, headers=auth(ADMIN_KEY))
    assert resp.status in (200, 201), await resp.text()


async def test_valid_token_is_accepted_with_identity_headers(
        make_client: Any, store_url: str, jwt_env: dict[str, str], keyset: KeySet) -> None:
    client = await make_client(store_url, **jwt_env)
    resp = await client.get("/v1/authz", headers=bearer(keyset.token(jti="j-ok")))
    assert resp.status == 200
    assert await resp.read() == b""
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Auth-Subject"] == "alice"
    assert resp.headers["X-Auth-Jti"] == "j-ok"
    assert "X-Revoker-Degraded" not in resp.headers


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/authz", "/v1/authz/", "/v1/authz/api/orders/7?x=1"])
async def test_any_method_and_appended_path(make_client: Any, jwt_env: dict[str, str],
                                            keyset: KeySet, method: str, path: str) -> None:
    """Envoy keeps the original method and appends the original path."""
    client = await make_client(**jwt_env)
    resp = await client.request(method, path, headers=bearer(keyset.token("ES256")))
    assert resp.status == 200
    resp = await client.request(method, path, headers=GATEWAY)
    assert resp.status == 401


async def test_traefik_forwarded_headers_are_harmless(make_client: Any, jwt_env: dict[str, str],
                                                      keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    headers = {**bearer(keyset.token("EdDSA")), "X-Forwarded-Method": "DELETE",
               "X-Forwarded-Uri": "/admin", "X-Forwarded-Host": "app.test",
               "X-Forwarded-Proto": "https"}
    resp = await client.get("/v1/authz", headers=headers)
    assert resp.status == 200 and resp.headers["X-Auth-Subject"] == "alice"


async def test_missing_token_is_a_bearer_challenge(make_client: Any,
                                                   jwt_env: dict[str, str]) -> None:
    client = await make_client(**jwt_env)
    for headers in (GATEWAY, {**GATEWAY, "Authorization": "Basic dXNlcjpwdw=="},
                    {**GATEWAY, "Authorization": "Bearer   "}):
        resp = await client.get("/v1/authz", headers=headers)
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert resp.headers["WWW-Authenticate"] == (
            'Bearer realm="revoker", error="invalid_token", error_description="missing token"')
        assert (await resp.json())["detail"] == "missing token"


async def test_refusal_never_echoes_the_token(make_client: Any, jwt_env: dict[str, str],
                                              keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    token = keyset.token(iss="https://other.test")
    resp = await client.get("/v1/authz", headers=bearer(token))
    assert resp.status == 401
    assert 'error_description="wrong issuer"' in resp.headers["WWW-Authenticate"]
    text = await resp.text()
    for part in token.split("."):
        assert part not in text
        assert all(part not in value for value in resp.headers.values())


async def test_gateway_key_only_in_x_revoker_key(make_client: Any, jwt_env: dict[str, str],
                                                 keyset: KeySet) -> None:
    """Authorization carries the user's token, so a key there is not a gateway key."""
    client = await make_client(**jwt_env)
    resp = await client.get("/v1/authz", headers={"Authorization": f"Bearer {CHECK_KEY}"})
    assert resp.status == 401
    resp = await client.get("/v1/authz", headers={"Authorization": f"Bearer {keyset.token()}"})
    assert resp.status == 401
    assert "error_description" not in resp.headers["WWW-Authenticate"]
    resp = await client.get("/v1/authz", headers={"X-Revoker-Key": "wrong",
                                                  "Authorization": f"Bearer {keyset.token()}"})
    assert resp.status == 401


async def test_check_auth_none_needs_no_gateway_key(make_client: Any, jwt_env: dict[str, str],
                                                    keyset: KeySet) -> None:
    client = await make_client(REVOKER_CHECK_AUTH="none", **jwt_env)
    resp = await client.get("/v1/authz", headers={"Authorization": f"Bearer {keyset.token()}"})
    assert resp.status == 200


async def test_every_revocation_kind_is_evaluated(make_client: Any, store_url: str,
                                                  jwt_env: dict[str, str],
                                                  keyset: KeySet) -> None:
    client = await make_client(store_url, **jwt_env)
    now = int(time.time())
    tokens = {
        "jti": keyset.token(jti="stolen"),
        "sid": keyset.token(sid="session-9"),
        "client": keyset.token(client_id="mobile-app", iat=now - 200),
        "azp": keyset.token(azp="spa", iat=now - 200),
        "sub": keyset.token(sub="mallory", iat=now - 200),
        "kid": keyset.token("EdDSA"),
    }
    for token in tokens.values():
        assert (await client.get("/v1/authz", headers=bearer(token))).status == 200
    await revoke(client, kind="jti", value="stolen")
    await revoke(client, kind="sid", value="session-9")
    await revoke(client, kind="client", value="mobile-app", issued_before=now - 100)
    await revoke(client, kind="client", value="spa", issued_before=now - 100)
    await revoke(client, kind="sub", value="mallory", issued_before=now - 100)
    await revoke(client, kind="kid", value="ed1")
    for name, token in tokens.items():
        resp = await client.get("/v1/authz", headers=bearer(token))
        assert resp.status == 401, name
        assert resp.headers["WWW-Authenticate"].endswith('error_description="revoked"')
    # a cutoff only refuses tokens issued before it
    fresh = keyset.token(sub="mallory", iat=now - 50)
    assert (await client.get("/v1/authz", headers=bearer(fresh))).status == 200
    # another key is unaffected by the kid revocation
    assert (await client.get("/v1/authz", headers=bearer(keyset.token("ES256")))).status == 200


async def test_cache_never_hides_a_new_revocation(make_client: Any, store_url: str,
                                                  jwt_env: dict[str, str],
                                                  keyset: KeySet) -> None:
    client = await make_client(store_url, **jwt_env)
    token = keyset.token(jti="cached")
    for _ in range(3):
        assert (await client.get("/v1/authz", headers=bearer(token))).status == 200
    await revoke(client, kind="jti", value="cached")
    assert (await client.get("/v1/authz", headers=bearer(token))).status == 401
    resp = await client.delete("/v1/revocations/jti/cached", headers=auth(ADMIN_KEY))
    assert resp.status == 204
    assert (await client.get("/v1/authz", headers=bearer(token))).status == 200


async def test_claim_header_mappings(make_client: Any, jwt_env: dict[str, str],
                                     keyset: KeySet) -> None:
    client = await make_client(
        REVOKER_AUTHZ_CLAIM_HEADERS="email=X-Auth-Email,roles=X-Auth-Roles,"
                                    "tenant=X-Auth-Tenant,admin=X-Auth-Admin,n=X-Auth-N,"
                                    "nick=X-Auth-Nick",
        **jwt_env)
    token = keyset.token(email="a@example.test", roles=["reader", "writer"],
                         tenant="evil\r\nX-Injected: 1", admin=True, n=7, nick="\ud800")
    resp = await client.get("/v1/authz", headers=bearer(token))
    assert resp.status == 200
    assert resp.headers["X-Auth-Email"] == "a@example.test"
    assert resp.headers["X-Auth-Roles"] == "reader,writer"
    assert resp.headers["X-Auth-Admin"] == "true"
    assert resp.headers["X-Auth-N"] == "7"
    # unsafe or absent claims give empty headers, so a client-sent value is overwritten
    assert resp.headers["X-Auth-Tenant"] == "" and "X-Injected" not in resp.headers
    assert resp.headers["X-Auth-Nick"] == ""
    resp = await client.get("/v1/authz", headers=bearer(keyset.token(sub=None)))
    assert resp.status == 200
    assert resp.headers["X-Auth-Subject"] == "" and resp.headers["X-Auth-Email"] == ""


async def test_rejections_are_counted(make_client: Any, jwt_env: dict[str, str],
                                      keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    token = keyset.token(jti="counted")
    await revoke(client, kind="jti", value="counted")
    assert (await client.get("/v1/authz", headers=bearer(token))).status == 401
    text = await (await client.get("/metrics")).text()
    assert 'revoker_token_rejections_total{reason="revoked"}' in text


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


async def test_store_down_fail_closed_is_503(make_client: Any, own_redis: RedisProcess,
                                             jwt_env: dict[str, str], keyset: KeySet) -> None:
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2", **jwt_env)
    token = keyset.token()
    assert (await client.get("/v1/authz", headers=bearer(token))).status == 200
    own_redis.kill()
    resp = await client.get("/v1/authz", headers=bearer(token))
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert (await resp.json())["detail"] == UNAVAILABLE  # gateways show it to end users
    # a bad token is still a 401: validation needs no store
    resp = await client.get("/v1/authz", headers=bearer(token[:-4]))
    assert resp.status == 401


async def test_store_down_fail_open_accepts_and_says_so(
        make_client: Any, own_redis: RedisProcess, jwt_env: dict[str, str],
        keyset: KeySet) -> None:
    client = await make_client(own_redis.url, REVOKER_STORE_TIMEOUT="0.2",
                               REVOKER_FAIL_MODE="open", **jwt_env)
    own_redis.kill()
    resp = await client.get("/v1/authz", headers=bearer(keyset.token()))
    assert resp.status == 200 and resp.headers["X-Revoker-Degraded"] == "fail-open"
