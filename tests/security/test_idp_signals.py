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
import time
import uuid
from typing import Any

import pytest

from tests import idp as fx
from tests.idp import IDP, RP_CLIENT, Issuers, logout_claims, signed, signed_raw
from tests.jwks_server import JwksServer
from tests.jwt_factory import AUDIENCE, ISSUER, claims, jwk, rsa_key, sign
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

