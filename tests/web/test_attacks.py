"""The attack suite: every forged, tampered or out-of-policy token is refused, both by
/v1/authz (401 with the reason) and by introspection (``{"active": false}`` and nothing
else); the accepting side shows that valid tokens of every configured kind do pass."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from revoker.config import Settings
from revoker.web.app import create_app
from tests.jwks_server import JwksServer
from tests.jwt_factory import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    KeySet,
    b64,
    b64json,
    claims,
    forge,
    jwk,
    pem,
    pooled_rsa,
    self_signed_cert_b64,
    sign,
)
from tests.lane_server import LaneTestServer
from tests.web import jwt_env as fx
from tests.web.conftest import CHECK_KEY, KEYS_ENV, auth
from tests.web.jwt_env import bearer

keyset, pem_dir, jwt_env = fx.keyset, fx.pem_dir, fx.jwt_env  # shared fixtures

ATTACKER = pooled_rsa(2)
MAX_LIFETIME = 3600


def hs256_with(secret: bytes, kid: str) -> str:
    """Key confusion: an HS256 MAC keyed with a *public* key, as a naive verifier would
    check it. PyJWT refuses to make one, so it is built by hand."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64json(claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def attacker_token(kid: str | None, **headers: Any) -> str:
    return sign(ATTACKER, "RS256", claims(), kid=kid, headers=headers)


def strip_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def truncate_signature(token: str) -> str:
    """Drop the signature's last bytes, keeping it valid base64url."""
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    return f"{head}.{b64(raw[:-16])}"


def non_json_payload(keys: KeySet) -> str:
    return jwt.api_jws.encode(b"this is not json", keys.rsa, algorithm="RS256",
                              headers={"kid": "rsa1"})


def es256_zero_signature(keys: KeySet) -> str:
    return forge({"alg": "ES256", "typ": "JWT", "kid": "ec1"}, claims(), bytes(64))


def now() -> int:
    return int(time.time())


Attack = Callable[[KeySet], str]

ATTACKS: dict[str, tuple[Attack, str]] = {
    "alg none": (lambda k: forge({"alg": "none", "typ": "JWT"}, claims()),
                 "algorithm not allowed"),
    "alg None": (lambda k: forge({"alg": "None", "kid": "rsa1"}, claims()),
                 "algorithm not allowed"),
    "alg NONE": (lambda k: forge({"alg": "NONE", "kid": "rsa1"}, claims()),
                 "algorithm not allowed"),
    "alg none with a signature": (
        lambda k: strip_signature(k.token()).replace(
            k.token().split(".")[0], b64json({"alg": "none"})) + "c2ln",
        "algorithm not allowed"),
    "stripped signature": (lambda k: strip_signature(k.token()), "bad signature"),
    "HS256 keyed with the RSA public key": (lambda k: hs256_with(pem(k.rsa), "rsa1"),
                                            "algorithm not allowed"),
    "HS256 keyed with the EC public key": (lambda k: hs256_with(pem(k.ec), "ec1"),
                                           "algorithm not allowed"),
    "unknown key claiming a trusted kid": (lambda k: attacker_token("rsa1"), "bad signature"),
    "unknown key without kid": (lambda k: attacker_token(None), "bad signature"),
    "unknown key with its own kid": (lambda k: attacker_token("attacker-1"), "unknown key"),
    "kid path traversal": (lambda k: attacker_token("../../../../../../dev/null"),
                           "unknown key"),
    "kid absolute path": (lambda k: attacker_token("/etc/passwd"), "unknown key"),
    "kid SQL-like": (lambda k: attacker_token("x' UNION SELECT 'secret' --"), "unknown key"),
    "kid unknown": (lambda k: k.token(kid="nope"), "unknown key"),
    "kid of another key type": (lambda k: k.token("RS256", kid="ec1"), "unknown key"),
    "kid not a string": (lambda k: forge({"alg": "RS256", "kid": 7}, claims(), b"x" * 256),
                         "malformed token"),
    "jku to attacker JWKS": (
        lambda k: attacker_token("attacker-1", jku="http://127.0.0.1:9/jwks.json"),
        "unknown key"),
    "jku with trusted kid": (
        lambda k: attacker_token("rsa1", jku="http://127.0.0.1:9/jwks.json"), "bad signature"),
    "x5u to attacker cert": (
        lambda k: attacker_token("attacker-1", x5u="http://127.0.0.1:9/cert.pem"),
        "unknown key"),
    "x5c with attacker cert": (
        lambda k: attacker_token(None, x5c=[self_signed_cert_b64(ATTACKER)]),
        "bad signature"),
    "embedded jwk": (lambda k: attacker_token(None, jwk=jwk(ATTACKER, None)),
                     "bad signature"),
    "embedded jwk with its kid": (
        lambda k: attacker_token("attacker-1", jwk=jwk(ATTACKER, "attacker-1")), "unknown key"),
    "expired": (lambda k: k.token(iat=now() - 700, exp=now() - 100), "expired"),
    "nbf in the future": (lambda k: k.token(nbf=now() + 300), "not yet valid"),
    "iat in the future beyond leeway": (lambda k: k.token(iat=now() + 300, exp=now() + 900),
                                        "issued in the future"),
    "lifetime over the maximum": (lambda k: k.token(exp=now() + MAX_LIFETIME + 60),
                                  "lifetime too long"),
    "missing exp": (lambda k: k.token(exp=None), "missing claim: exp"),
    "missing jti": (lambda k: k.token(jti=None), "missing claim: jti"),
    "wrong iss": (lambda k: k.token(iss="https://evil.test"), "wrong issuer"),
    "wrong aud": (lambda k: k.token(aud="someone-else"), "wrong audience"),
    "truncated to two segments": (lambda k: k.token().rsplit(".", 1)[0], "malformed token"),
    "truncated signature": (lambda k: truncate_signature(k.token()), "bad signature"),
    "signature with bad base64 length": (lambda k: k.token()[:-1], "malformed token"),
    "non-base64 segments": (lambda k: "!!!.@@@.###", "malformed token"),
    "non-base64 payload": (lambda k: k.token().split(".")[0] + ".%%%%." + "AAAA",
                           "malformed token"),
    "header not an object": (lambda k: forge([], claims()), "malformed token"),  # type: ignore[arg-type]
    "non-JSON payload": (non_json_payload, "malformed token"),
    "JSON array payload": (lambda k: jwt.api_jws.encode(b"[1,2]", k.rsa, algorithm="RS256",
                                                        headers={"kid": "rsa1"}),
                           "malformed token"),
    "numeric date overflowing a float": (lambda k: k.token(exp=10**400), "malformed token"),
    "numeric date as a string": (lambda k: k.token(nbf="0"), "malformed token"),
    "ES256 all-zero signature": (es256_zero_signature, "bad signature"),
    "ES256 signature of the wrong length": (
        lambda k: forge({"alg": "ES256", "kid": "ec1"}, claims(), bytes(70)), "bad signature"),
    "PS256 not allow-listed": (lambda k: sign(k.rsa, "PS256", claims(), kid="rsa1"),
                               "algorithm not allowed"),
    "payload tampered after signing": (
        lambda k: ".".join([(p := k.token().split("."))[0],
                            b64json({**claims(), "sub": "admin"}), p[2]]),
        "bad signature"),
}

ENDPOINTS = ["authz", "introspect"]


async def ask(client: TestClient[Any, Any], endpoint: str, token: str) -> tuple[bool, str | None]:
    """(accepted, reason) as the endpoint tells it; asserts the shape of every answer."""
    if endpoint == "authz":
        resp = await client.get("/v1/authz/app/path", headers=bearer(token))
        if resp.status == 200:
            return True, None
        assert resp.status == 401, await resp.text()
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="revoker", error="invalid_token"')
        assert token not in challenge and token not in await resp.text()
        return False, challenge.split('error_description="', 1)[1].rstrip('"')
    resp = await client.post("/oauth2/introspect", data={"token": token},
                             headers=auth(CHECK_KEY))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    if body == {"active": False}:
        return False, None
    assert body["active"] is True
    return True, None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_refused(make_client: Any, jwt_env: dict[str, str], keyset: KeySet,
                                 endpoint: str, name: str) -> None:
    client = await make_client(**jwt_env)
    make, reason = ATTACKS[name]
    accepted, told = await ask(client, endpoint, make(keyset))
    assert not accepted
    if endpoint == "authz":
        assert told == reason


@pytest.fixture
async def big_header_client(jwt_env: dict[str, str]) -> Any:
    """The service with a header limit above 16 KiB, as ``revoker serve`` should run."""
    env = {"REVOKER_API_KEYS": KEYS_ENV, "REVOKER_ACCESS_LOG": "false", **jwt_env}
    server = LaneTestServer(create_app(Settings.from_env(env)))
    await server.start_server(max_field_size=64 * 1024, max_line_size=64 * 1024)
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_oversized_token_is_refused_before_decoding(big_header_client: Any,
                                                          keyset: KeySet,
                                                          endpoint: str) -> None:
    token = keyset.token(padding="x" * (16 * 1024))
    assert len(token) > 16 * 1024
    accepted, told = await ask(big_header_client, endpoint, token)
    assert not accepted
    if endpoint == "authz":
        assert told == "token too large"


async def test_oversized_token_on_a_default_server_is_still_refused(
        make_client: Any, jwt_env: dict[str, str], keyset: KeySet) -> None:
    client = await make_client(**jwt_env)
    resp = await client.get("/v1/authz", headers=bearer(keyset.token(padding="x" * 20000)))
    assert resp.status in (400, 401, 431)


# -- the accepting side --------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_valid_asymmetric_tokens_are_accepted(make_client: Any, jwt_env: dict[str, str],
                                                    keyset: KeySet, endpoint: str,
                                                    alg: str) -> None:
    client = await make_client(**jwt_env)
    assert (await ask(client, endpoint, keyset.token(alg)))[0]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_hs256_configured_alone(make_client: Any, keyset: KeySet, endpoint: str) -> None:
    client = await make_client(REVOKER_JWT_ALGORITHMS="HS256", REVOKER_JWT_SECRET=HS_SECRET,
                               REVOKER_JWT_ISSUER=ISSUER, REVOKER_JWT_AUDIENCE=AUDIENCE)
    assert (await ask(client, endpoint, keyset.token("HS256")))[0]
    # the RSA-signed token is now the one of the wrong family
    assert not (await ask(client, endpoint, keyset.token("RS256")))[0]
    forged = jwt.encode(claims(), "another-secret-that-is-long-enough-for-hs256", "HS256")
    assert await ask(client, endpoint, forged) == (False, "bad signature" if endpoint == "authz"
                                                   else None)


async def poll(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_jwks_rotation_without_restart(make_client: Any, endpoint: str,
                                             tmp_path: Path) -> None:
    old_key, new_key = pooled_rsa(0), pooled_rsa(1)
    server = await JwksServer({"keys": [jwk(old_key, "2026-old", "RS256")]}).start()
    try:
        client = await make_client(REVOKER_JWKS_URL=server.url,
                                   REVOKER_JWKS_REFRESH_INTERVAL="1",
                                   REVOKER_JWT_ISSUER=ISSUER, REVOKER_JWT_AUDIENCE=AUDIENCE)
        old_token = sign(old_key, "RS256", claims(), kid="2026-old")
        new_token = sign(new_key, "RS256", claims(), kid="2026-new")
        assert (await ask(client, endpoint, old_token))[0]
        assert not (await ask(client, endpoint, new_token))[0]
        server.jwks = {"keys": [jwk(new_key, "2026-new", "RS256")]}

        async def new_accepted() -> bool:
            return (await ask(client, endpoint, new_token))[0]

        await poll(new_accepted)
        accepted, told = await ask(client, endpoint, old_token)
        assert not accepted and told in (None, "unknown key")
        # the identity provider goes down: keys are served from cache
        server.down = True
        fetches = server.fetches
        await poll(lambda: _later(server, fetches))
        assert (await ask(client, endpoint, new_token))[0]
    finally:
        await server.stop()


async def _later(server: JwksServer, fetches: int) -> bool:
    return server.fetches > fetches


def test_attack_table_is_json_safe() -> None:
    """Every expected reason is one of the documented, bounded reasons."""
    from revoker.tokens import REASONS
    for _, reason in ATTACKS.values():
        assert reason in REASONS or reason.startswith("missing claim: ")
    assert json.dumps(sorted(ATTACKS))
