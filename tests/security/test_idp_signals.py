"""Attacks on, and failures of, the signals identity providers send: back-channel logout
tokens and Security Event Tokens.

- key rotation: a provider restarted with a new key must not lose its first logout (it
  never retries), and the key it reads is shared with ``/v1/authz``;
- a flood of random kids must not turn revoker into a request amplifier against the
  provider, nor hang requests;
- a ``sid`` revokes that session only, not the whole user;
- an old, captured signal is refused (nothing it could revoke is still valid);
- absurd NumericDates are a 400, never a 500, and change nothing;
- a token never chooses its key (``jku``, embedded ``jwk``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from revoker.config import Settings
from revoker.web.app import create_app
from tests import idp as fx
from tests.idp import IDP, RP_CLIENT, Issuers, logout_claims, signed, signed_raw
from tests.jwks_server import JwksServer
from tests.jwt_factory import AUDIENCE, ISSUER, claims, jwk, rsa_key, sign
from tests.lane_server import LaneTestServer
from tests.redis_proc import free_port
from tests.web import conftest as web_fx
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, auth, stored

pytestmark = pytest.mark.security

issuers = fx.issuers  # shared fixtures
make_client, store_url = web_fx.make_client, web_fx.store_url
LOGOUT = "/oidc/backchannel-logout"
SSF = "/ssf/events"
SET_TYPE = "application/secevent+jwt"
DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
DAY = 86400


async def logout(client: Any, token: str) -> Any:
    return await client.post(LOGOUT, data={"logout_token": token})


async def push(client: Any, token: str) -> Any:
    return await client.post(SSF, data=token.encode(), headers={"Content-Type": SET_TYPE})


def set_claims(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": IDP, "aud": RP_CLIENT, "iat": int(time.time()), "jti": uuid.uuid4().hex,
        "events": {DISABLED: {"subject": {"format": "iss_sub", "iss": IDP, "sub": "u-set"}}}}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


async def nothing_stored(client: Any) -> bool:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return (await resp.json())["items"] == []


# -- key rotation ---------------------------------------------------------------------------

async def test_first_logout_signed_by_a_rotated_key_revokes(make_client: Any, store_url: str,
                                                            issuers: Issuers) -> None:
    client = await make_client(store_url, **issuers.env)
    before = issuers.main_jwks.fetches
    kid, new_key = issuers.rotate_main()
    token = sign(new_key, "RS256", logout_claims(sid="s-rotated"), kid=kid,
                 headers={"typ": "logout+jwt"})
    resp = await logout(client, token)
    assert resp.status == 200, await resp.text()
    assert await stored(client, "sid", "s-rotated") is not None
    assert issuers.main_jwks.fetches == before + 1


async def test_first_set_signed_by_a_rotated_key_revokes(make_client: Any,
                                                         issuers: Issuers) -> None:
    client = await make_client("memory://", **issuers.env)
    kid, new_key = issuers.rotate_main()
    token = sign(new_key, "RS256", set_claims(), kid=kid, headers={"typ": "secevent+jwt"})
    resp = await push(client, token)
    assert resp.status == 202, await resp.text()
    assert await stored(client, "sub", "u-set") is not None


async def test_one_key_cache_per_jwks_url_shared_with_authz(make_client: Any,
                                                            issuers: Issuers) -> None:
    """The issuer's JWKS is also the access-token JWKS: it is read once at start, and the
    read a logout triggers also serves ``/v1/authz``."""
    client = await make_client("memory://", REVOKER_JWKS_URL=issuers.main_jwks.url,
                               REVOKER_JWT_ISSUER=ISSUER, REVOKER_JWT_AUDIENCE=AUDIENCE,
                               **issuers.env)
    assert issuers.main_jwks.fetches == 1
    kid, new_key = issuers.rotate_main()
    token = sign(new_key, "RS256", logout_claims(sid="s-shared"), kid=kid,
                 headers={"typ": "logout+jwt"})
    assert (await logout(client, token)).status == 200
    access = sign(new_key, "RS256", claims(), kid=kid)
    resp = await client.get("/v1/authz", headers={"X-Revoker-Key": CHECK_KEY,
                                                  "Authorization": f"Bearer {access}"})
    assert resp.status == 200, await resp.text()
    assert issuers.main_jwks.fetches == 2


async def test_flood_of_random_kids_reads_the_jwks_at_most_once_per_interval(
        make_client: Any, issuers: Issuers) -> None:
    client = await make_client("memory://", REVOKER_JWKS_MIN_REFETCH_INTERVAL="600",
                               **issuers.env)
    before = issuers.main_jwks.fetches
    tokens = [signed(issuers.main, logout_claims(), kid=f"random-{i}") for i in range(60)]
    started = time.monotonic()
    answers = await asyncio.gather(*(logout(client, t) for t in tokens[:30]))
    for token in tokens[30:]:
        answers.append(await logout(client, token))
    elapsed = time.monotonic() - started
    assert all(a.status == 400 for a in answers)
    assert {(await a.json())["error_description"] for a in answers} == {"unknown key"}
    assert issuers.main_jwks.fetches == before + 1
    assert elapsed < 5.0  # no request waits for a read the interval forbids
    assert await nothing_stored(client)


async def test_wait_for_a_hanging_jwks_is_bounded(make_client: Any, issuers: Issuers) -> None:
    client = await make_client("memory://", REVOKER_JWKS_REFETCH_WAIT="0.3", **issuers.env)
    issuers.main_jwks.delay_s = 3.0
    started = time.monotonic()
    resp = await logout(client, signed(issuers.main, logout_claims(), kid="not-yet"))
    assert resp.status == 400
    assert (await resp.json())["error_description"] == "unknown key"
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("pointer", ["jku", "jwk", "x5u"])
async def test_a_token_never_chooses_its_key(make_client: Any, issuers: Issuers,
                                             pointer: str) -> None:
    attacker = rsa_key()
    server = await JwksServer({"keys": [jwk(attacker, "evil", "RS256")]}).start()
    try:
        client = await make_client("memory://", **issuers.env)
        extra: dict[str, Any] = {"typ": "logout+jwt"}
        extra[pointer] = jwk(attacker, "evil", "RS256") if pointer == "jwk" else server.url
        token = sign(attacker, "RS256", logout_claims(sid="s-evil"), kid="evil", headers=extra)
        resp = await logout(client, token)
        assert resp.status == 400
        assert (await resp.json())["error_description"] == "unknown key"
        assert server.fetches == 0
        assert await nothing_stored(client)
    finally:
        await server.stop()


# -- what a logout revokes ---------------------------------------------------------------

async def test_sid_and_sub_revoke_that_session_only(make_client: Any, store_url: str,
                                                    issuers: Issuers) -> None:
    """OIDC reads a sid as "this session ended": the user's other sessions stay valid."""
    client = await make_client(store_url, **issuers.env)
    iat = int(time.time()) - 5
    token = signed(issuers.main, logout_claims(sid="phone", sub="alice", iat=iat))
    assert (await logout(client, token)).status == 200

    async def revoked(**token_claims: Any) -> bool:
        resp = await client.post("/v1/check", json={"claims": token_claims},
                                 headers=auth(ADMIN_KEY))
        return bool((await resp.json())["revoked"])

    assert await revoked(sub="alice", sid="phone", iat=iat - 60)
    assert not await revoked(sub="alice", sid="laptop", iat=iat - 60)
    assert await stored(client, "sub", "alice") is None


# -- old signals -----------------------------------------------------------------------------

async def test_a_30_day_old_logout_token_without_exp_is_refused(make_client: Any,
                                                                issuers: Issuers) -> None:
    client = await make_client("memory://", **issuers.env)
    old = int(time.time()) - 30 * DAY
    resp = await logout(client, signed(issuers.main, logout_claims(iat=old, exp=None)))
    assert resp.status == 400
    assert (await resp.json())["error_description"] == "issued too long ago"
    assert await nothing_stored(client)


async def test_logout_older_than_the_max_token_lifetime_is_refused_whatever_max_age(
        make_client: Any, issuers: Issuers) -> None:
    env = {**issuers.env, "REVOKER_OIDC_MAX_AGE": str(DAY),
           "REVOKER_MAX_TOKEN_LIFETIME": "3600"}
    client = await make_client("memory://", **env)
    iat = int(time.time()) - 3600 - 30 - 60
    resp = await logout(client, signed(issuers.main, logout_claims(iat=iat, exp=None)))
    assert resp.status == 400
    assert (await resp.json())["error_description"] == "issued too long ago"
    assert await nothing_stored(client)


async def test_a_30_day_old_set_without_exp_is_refused(make_client: Any,
                                                       issuers: Issuers) -> None:
    client = await make_client("memory://", **issuers.env)
    old = int(time.time()) - 30 * DAY
    token = signed(issuers.main, set_claims(iat=old), typ="secevent+jwt")
    resp = await push(client, token)
    assert resp.status == 400
    assert await resp.json() == {"err": "invalid_request", "description": "issued too long ago"}
    assert await nothing_stored(client)


async def test_a_set_within_the_max_token_lifetime_is_still_accepted(
        make_client: Any, issuers: Issuers) -> None:
    client = await make_client("memory://", REVOKER_MAX_TOKEN_LIFETIME="3600", **issuers.env)
    iat = int(time.time()) - 3000
    resp = await push(client, signed(issuers.main, set_claims(iat=iat), typ="secevent+jwt"))
    assert resp.status == 202, await resp.text()
    rec = await stored(client, "sub", "u-set")
    assert rec is not None and rec["issued_before"] == iat + 1


# -- absurd NumericDates -----------------------------------------------------------------------

ABSURD = ["1" + "0" * 400, "1e309", "-1e309", "-1", "-0.5", "NaN", "Infinity", '"1700000000"',
          "true", "false", "[1]", "{}"]


def _payload_json(base: dict[str, Any], iat_literal: str) -> str:
    """``base`` as JSON with ``iat`` written exactly as ``iat_literal``."""
    text = json.dumps({**base, "iat": "IAT_PLACEHOLDER"}, separators=(",", ":"))
    return text.replace('"IAT_PLACEHOLDER"', iat_literal)


@pytest.mark.parametrize("iat", ABSURD)
async def test_absurd_iat_in_a_logout_token_is_400(make_client: Any, issuers: Issuers,
                                                   iat: str) -> None:
    client = await make_client("memory://", **issuers.env)
    kid, key = issuers.main.by_alg("RS256")
    token = signed_raw(key, kid, _payload_json(logout_claims(sid="s-absurd", exp=None), iat))
    resp = await logout(client, token)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"] == "invalid_request"
    assert await nothing_stored(client)


@pytest.mark.parametrize("iat", ABSURD)
async def test_absurd_iat_in_a_set_is_400(make_client: Any, issuers: Issuers, iat: str) -> None:
    client = await make_client("memory://", **issuers.env)
    kid, key = issuers.main.by_alg("RS256")
    token = signed_raw(key, kid, _payload_json(set_claims(), iat), typ="secevent+jwt")
    resp = await push(client, token)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["err"] == "invalid_request"
    assert await nothing_stored(client)


@pytest.mark.parametrize("exp", ["1" + "0" * 400, "1e309", "-1", '"soon"', "true"])
async def test_absurd_exp_in_a_logout_token_is_400(make_client: Any, issuers: Issuers,
                                                   exp: str) -> None:
    client = await make_client("memory://", **issuers.env)
    kid, key = issuers.main.by_alg("RS256")
    base = logout_claims(sid="s-absurd-exp", exp=None)
    text = json.dumps({**base, "exp": "EXP"}, separators=(",", ":")).replace('"EXP"', exp)
    resp = await logout(client, signed_raw(key, kid, text))
    assert resp.status == 400, await resp.text()
    assert await nothing_stored(client)



# -- a real OpenID provider --------------------------------------------------------------------

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
NODE = shutil.which("node")


class RealProvider:
    """``tests/oidc_provider/provider.mjs`` (the oidc-provider package) on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, kid: str, backchannel_uri: str) -> None:
        assert NODE is not None
        self.process = await asyncio.create_subprocess_exec(
            NODE, "provider.mjs", str(self.port), kid, backchannel_uri, cwd=PROVIDER_DIR,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        assert line.strip() == b"ready", "the OpenID provider did not start"

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), timeout=10)
            self.process = None

    async def logout(self, sub: str, sid: str) -> dict[str, Any]:
        """The provider sends its logout token for (sub, sid), as end_session does."""
        async with aiohttp.ClientSession() as session, session.post(
                f"{self.issuer}/test/backchannel-logout", data={"sub": sub, "sid": sid}) as resp:
            return dict(await resp.json())


@pytest.fixture
async def revoker_on(prefix: str) -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    """``await revoker_on(port, **env)``: the app on a port chosen in advance, so that an
    identity provider started first can be told where to send its logouts."""
    clients: list[TestClient[Any, Any]] = []

    async def start(port: int, **env: str) -> TestClient[Any, Any]:
        settings = Settings.from_env({"REVOKER_API_KEYS": web_fx.KEYS_ENV,
                                      "REVOKER_KEY_PREFIX": prefix,
                                      "REVOKER_ACCESS_LOG": "false", **env})
        client = TestClient(LaneTestServer(create_app(settings), port=port))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.mark.slow
@pytest.mark.skipif(NODE is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(),
                    reason="needs node and `npm ci` in tests/oidc_provider")
async def test_real_provider_restarted_with_a_new_key_logs_out_at_once(
        revoker_on: Callable[..., Awaitable[TestClient[Any, Any]]]) -> None:
    """oidc-provider signs its own logout tokens. Restarted with a new signing key, its very
    first logout is accepted (it never retries) and revokes that session only."""
    provider, port = RealProvider(), free_port()
    backchannel_uri = f"http://127.0.0.1:{port}{LOGOUT}"
    try:
        await provider.start("k-1", backchannel_uri)
        client = await revoker_on(port, REVOKER_OIDC_AUDIENCE="revoker-rp",
                                  REVOKER_OIDC_ISSUERS=f"{provider.issuer}={provider.issuer}/jwks")
        assert await provider.logout("alice", "session-1") == {"ok": True}
        assert await stored(client, "sid", "session-1") is not None
        await provider.stop()
        await provider.start("k-2", backchannel_uri)  # the same issuer, a new signing key
        assert await provider.logout("alice", "session-2") == {"ok": True}
        assert await stored(client, "sid", "session-2") is not None
        assert await stored(client, "sub", "alice") is None
    finally:
        await provider.stop()
