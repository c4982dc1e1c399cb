"""Global Token Revocation: who may log every user out, and what a refused call changes.

Threat: ``/oauth2/global-token-revocation`` revokes all of a user's tokens; in the wrong
hands it logs anyone out, everywhere (a denial of service the draft's security
considerations warn about), and an ``iss_sub`` of a foreign issuer names a different
person whose ``sub`` happens to be the same string here.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from tests.web import conftest as web_fixtures
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, REVOKE_KEY, auth

pytestmark = pytest.mark.security
make_client = web_fixtures.make_client  # the web suite's app factory
PATH = "/oauth2/global-token-revocation"
IDP = "https://idp.example.test"
SECRETS = {"soc-tool": "soc-secret", "web-app": "web-secret"}
VICTIM = {"sub_id": {"format": "email", "email": "victim@example.test"}}


def env() -> dict[str, str]:
    clients = ",".join(f"{cid}:{hashlib.sha256(secret.encode()).hexdigest()}"
                       for cid, secret in SECRETS.items())
    return {"REVOKER_OAUTH_CLIENTS": clients, "REVOKER_GTR_CLIENTS": "soc-tool",
            "REVOKER_JWT_ISSUER": IDP}


def basic(client_id: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{SECRETS[client_id]}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def nothing_revoked(client: Any) -> bool:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return bool((await resp.json())["items"] == [])


async def test_a_check_key_cannot_revoke_users(make_client: Any) -> None:
    client = await make_client("memory://", **env())
    for headers in (auth(CHECK_KEY), {"X-Revoker-Key": CHECK_KEY}):
        resp = await client.post(PATH, json=VICTIM, headers=headers)
        assert resp.status == 403
        assert 'scope="revoke"' in resp.headers["WWW-Authenticate"]
    assert await nothing_revoked(client)


async def test_an_oauth_client_not_listed_for_gtr_cannot_revoke_users(make_client: Any) -> None:
    """``web-app`` may revoke its own tokens on /oauth2/revoke; that is no licence to log
    out every user."""
    client = await make_client("memory://", **env())
    resp = await client.post(PATH, json=VICTIM, headers=basic("web-app"))
    assert resp.status == 403
    assert await nothing_revoked(client)
    assert (await client.post(PATH, json=VICTIM, headers=basic("soc-tool"))).status == 204


async def test_a_forged_or_unknown_credential_is_401(make_client: Any) -> None:
    client = await make_client("memory://", **env())
    forged = base64.b64encode(b"soc-tool:guess").decode()
    for headers in ({}, auth("rvk_not_a_key"), {"Authorization": f"Basic {forged}"},
                    {"Authorization": "Basic %%%"}):
        assert (await client.post(PATH, json=VICTIM, headers=headers)).status == 401
    assert await nothing_revoked(client)


@pytest.mark.parametrize("sub_id", [
    {"format": "iss_sub", "iss": "https://attacker.example.test", "sub": "admin"},
    {"format": "iss_sub", "iss": IDP + "/", "sub": "admin"},  # not the same issuer
    {"format": "complex", "user": {"format": "iss_sub", "iss": "https://attacker.example.test",
                                   "sub": "admin"}},
])
async def test_an_unknown_issuers_subject_is_refused(make_client: Any,
                                                     sub_id: dict[str, Any]) -> None:
    client = await make_client("memory://", **env())
    resp = await client.post(PATH, json={"sub_id": sub_id}, headers=auth(REVOKE_KEY))
    assert resp.status == 404
    assert await nothing_revoked(client)


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b'"sub_id"', b"{", b'{"sub_id": null}', b'{"sub_id": []}',
    b'{"sub_id": {"format": "email", "email": "a\\u0000b@example.test"}}',
    b'{"sub_id": {"format": "email", "email": 7}}',
    b'{"sub_id": {"format": "opaque", "id": "\\ud800"}}',
    b'{"sub_id": {"format": "complex", "user": "victim"}}',
    b'{"sub_id": {"format": "complex", "session": {"format": "email", "email": "x@y.z"}}}',
    b'{"sub_id": {"format": ["email"], "email": "victim@example.test"}}',
    b"\xff\xfe{}",
])
async def test_a_malformed_body_changes_nothing(make_client: Any, body: bytes) -> None:
    client = await make_client("memory://", **env())
    resp = await client.post(PATH, data=body, headers={**auth(ADMIN_KEY),
                                                        "Content-Type": "application/json"})
    assert resp.status == 400, body
    assert resp.content_type == "application/problem+json"
    assert await nothing_revoked(client)


async def test_a_forged_host_does_not_move_the_announced_endpoints(make_client: Any) -> None:
    """The metadata comes from REVOKER_PUBLIC_URL alone: a Host header cannot point
    callers (and their credentials) at another server, nor poison a cache with it."""
    client = await make_client("memory://", REVOKER_PUBLIC_URL="https://revoker.example.test")
    resp = await client.get("/.well-known/oauth-authorization-server",
                            headers={"Host": "attacker.example.test",
                                     "X-Forwarded-Host": "attacker.example.test"})
    text = await resp.text()
    assert resp.status == 200 and "attacker" not in text
