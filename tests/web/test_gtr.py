"""Global Token Revocation (POST /oauth2/global-token-revocation) and the RFC 8414
metadata document that announces it."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from revoker.config import Settings
from revoker.errors import ConfigError
from tests.conftest import FakeClock
from tests.web.conftest import ADMIN_KEY, REVOKE_KEY, auth, stored

PATH = "/oauth2/global-token-revocation"
IDP = "https://idp.example.test/realms/main"
API_ISSUER = "https://login.example.test"
TOOL_SECRET = "security-tool-secret"
PUBLIC = "https://revoker.example.test"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def gtr_env(**extra: str) -> dict[str, str]:
    """An issuer trusted for signals (its JWKS is never read by these tests), an access
    token issuer, and an OAuth client allowed to call Global Token Revocation."""
    digest = hashlib.sha256(TOOL_SECRET.encode()).hexdigest()
    return {"REVOKER_OIDC_ISSUERS": f"{IDP}=http://127.0.0.1:9/jwks",
            "REVOKER_OIDC_AUDIENCE": "revoker", "REVOKER_JWT_ISSUER": API_ISSUER,
            "REVOKER_OAUTH_CLIENTS": f"soc-tool:{digest}",
            "REVOKER_GTR_CLIENTS": "soc-tool", **extra}


async def call(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await client.post(PATH, json=body, headers=auth(REVOKE_KEY) if headers is None
                             else headers)


async def records(client: Any) -> list[tuple[str, str]]:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return sorted((r["kind"], r["value"]) for r in (await resp.json())["items"])


@pytest.mark.parametrize(("sub_id", "expected"), [
    ({"format": "iss_sub", "iss": IDP, "sub": "user-1"}, [("sub", "user-1")]),
    ({"format": "iss_sub", "iss": API_ISSUER, "sub": "user-2"}, [("sub", "user-2")]),
    ({"format": "opaque", "id": "e193177dfdc52e3dd03f78c"}, [("sub", "e193177dfdc52e3dd03f78c")]),
    ({"format": "email", "email": "user@example.com"}, [("sub", "user@example.com")]),
    ({"format": "complex", "user": {"format": "email", "email": "user@example.com"},
      "session": {"format": "opaque", "id": "s-1"}}, [("sub", "user@example.com")]),
    ({"format": "complex", "session": {"format": "opaque", "id": "s-1"}}, [("sid", "s-1")]),
])
async def test_each_honoured_format_revokes(make_client: Any, store_url: str,
                                            sub_id: dict[str, Any],
                                            expected: list[tuple[str, str]]) -> None:
    client = await make_client(store_url, **gtr_env())
    resp = await call(client, {"sub_id": sub_id})
    assert resp.status == 204, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    assert await records(client) == expected
    record = await stored(client, *expected[0])
    assert record is not None
    assert record["actor"] == "logout-hook" and record["reason"] == "global token revocation"


async def test_cutoff_is_the_end_of_the_request_second(make_client: Any,
                                                       clock: FakeClock) -> None:
    second = int(time.time())  # the memory store expires records on real time
    clock.now = second + 0.6
    client = await make_client("memory://", clock=clock, **gtr_env())
    assert (await call(client, {"sub_id": {"format": "opaque", "id": "u-7"}})).status == 204
    record = await stored(client, "sub", "u-7")
    assert record is not None and record["issued_before"] == second + 1

    async def revoked(iat: int) -> bool:
        resp = await client.post("/v1/check", json={"claims": {"sub": "u-7", "iat": iat}},
                                 headers=auth(ADMIN_KEY))
        return bool((await resp.json())["revoked"])

    assert await revoked(second)  # issued earlier in the same second
    assert not await revoked(second + 1)  # the next login after it passes
    clock.advance(5)  # asking again later moves the cutoff forward
    assert (await call(client, {"sub_id": {"format": "opaque", "id": "u-7"}})).status == 204
    assert await revoked(second + 1)


async def test_a_configured_gtr_client_may_call_with_basic(make_client: Any) -> None:
    client = await make_client("memory://", **gtr_env())
    resp = await call(client, {"sub_id": {"format": "opaque", "id": "u-9"}},
                      basic("soc-tool", TOOL_SECRET))
    assert resp.status == 204
    record = await stored(client, "sub", "u-9")
    assert record is not None and record["actor"] == "soc-tool"


@pytest.mark.parametrize(("body", "status"), [
    ({}, 400),
    ({"sub_id": "user@example.com"}, 400),
    ({"sub_id": {"email": "user@example.com"}}, 400),
    ({"sub_id": {"format": "phone_number", "phone_number": "+12065550100"}}, 400),
    ({"sub_id": {"format": "did", "url": "did:example:123"}}, 400),
    ({"sub_id": {"format": "iss_sub", "iss": IDP}}, 400),
    ({"sub_id": {"format": "opaque", "id": ""}}, 400),
    ({"sub_id": {"format": "opaque", "id": "x" * 513}}, 400),
    ({"sub_id": {"format": "complex"}}, 400),
    ([{"sub_id": {"format": "opaque", "id": "u"}}], 400),
    ({"sub_id": {"format": "iss_sub", "iss": "https://unknown.example.test", "sub": "u"}},
     404),
])
async def test_draft_status_codes_for_refused_requests(make_client: Any, body: Any,
                                                       status: int) -> None:
    client = await make_client("memory://", **gtr_env())
    resp = await call(client, body)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["detail"]
    assert await records(client) == []


async def test_credentials_are_required(make_client: Any) -> None:
    client = await make_client("memory://", **gtr_env())
    body = {"sub_id": {"format": "opaque", "id": "u"}}
    resp = await call(client, body, {})
    assert resp.status == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
    resp = await call(client, body, basic("soc-tool", "wrong"))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert await records(client) == []


async def test_a_json_content_type_is_required(make_client: Any) -> None:
    client = await make_client("memory://", **gtr_env())
    resp = await client.post(PATH, data="sub_id=x", headers={
        **auth(REVOKE_KEY), "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    resp = await client.post(PATH, data="{not json", headers={
        **auth(REVOKE_KEY), "Content-Type": "application/json"})
    assert resp.status == 400


# -- RFC 8414 metadata -----------------------------------------------------------------------

async def test_metadata_announces_the_oauth_endpoints(make_client: Any) -> None:
    client = await make_client("memory://", **gtr_env(REVOKER_PUBLIC_URL=PUBLIC + "/"))
    resp = await client.get("/.well-known/oauth-authorization-server")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["issuer"] == PUBLIC
    assert doc["response_types_supported"] == []
    assert doc["revocation_endpoint"] == PUBLIC + "/oauth2/revoke"
    assert doc["introspection_endpoint"] == PUBLIC + "/oauth2/introspect"
    assert doc["global_token_revocation_endpoint"] == PUBLIC + PATH
    assert doc["global_token_revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "Bearer"]
    # every announced endpoint is a route of this service
    for name in ("revocation_endpoint", "introspection_endpoint",
                 "global_token_revocation_endpoint"):
        resp = await client.post(urlsplit(doc[name]).path, json={}, headers=auth(ADMIN_KEY))
        assert resp.status not in (404, 405), name


async def test_basic_is_announced_only_when_clients_may_use_it(make_client: Any) -> None:
    client = await make_client("memory://", REVOKER_PUBLIC_URL=PUBLIC)
    doc = await (await client.get("/.well-known/oauth-authorization-server")).json()
    assert doc["revocation_endpoint_auth_methods_supported"] == ["Bearer"]
    assert doc["global_token_revocation_endpoint_auth_methods_supported"] == ["Bearer"]


async def test_metadata_is_a_404_without_a_public_url(make_client: Any) -> None:
    client = await make_client("memory://")
    resp = await client.get("/.well-known/oauth-authorization-server")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    assert "REVOKER_PUBLIC_URL" in (await resp.json())["detail"]


@pytest.mark.parametrize(("env", "variable"), [
    ({"REVOKER_PUBLIC_URL": "http://revoker.example.test"}, "REVOKER_PUBLIC_URL"),
    ({"REVOKER_PUBLIC_URL": "https://revoker.example.test/?x=1"}, "REVOKER_PUBLIC_URL"),
    ({"REVOKER_GTR_CLIENTS": "nobody"}, "REVOKER_GTR_CLIENTS"),
])
def test_bad_settings_stop_the_service(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.variable == variable


def test_a_loopback_public_url_may_be_plain_http() -> None:
    settings = Settings.from_env({"REVOKER_PUBLIC_URL": "http://127.0.0.1:8080/"})
    assert settings.public_url == "http://127.0.0.1:8080"
