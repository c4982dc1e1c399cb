"""POST /oidc/backchannel-logout: OpenID Connect Back-Channel Logout 1.0, section 2.6.

One refused case per validation step, the accepted shapes, and replay refused."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests import idp as fx
from tests.idp import (
    IDP,
    LOGOUT_EVENT,
    OTHER_IDP,
    RP_CLIENT,
    Issuers,
    logout_claims,
    signed,
)
from tests.jwt_factory import HS_SECRET, KeySet, forge, rsa_key, sign
from tests.redis_proc import RedisProcess
from tests.web.conftest import ADMIN_KEY, auth, stored

issuers = fx.issuers  # shared fixture
FORM = "/oidc/backchannel-logout"


async def post(client: Any, token: str) -> Any:
    return await client.post(FORM, data={"logout_token": token})



async def nothing_stored(client: Any) -> bool:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return (await resp.json())["items"] == []


async def test_sid_revokes_that_session_only(make_client: Any, store_url: str,
                                            issuers: Issuers):
    """The contract (and the spec): a sid means "this session ended", even with a sub."""
    client = await make_client(store_url, **issuers.env)
    iat = int(time.time()) - 5
    resp = await post(client, signed(issuers.main, logout_claims(sid="s-42", sub="u-42",
                                                                 iat=iat)))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    rec = await stored(client, "sid", "s-42")
    assert rec is not None and rec["actor"] == f"backchannel:{IDP}"
    assert rec["reason"] == "back-channel logout"
    assert await stored(client, "sub", "u-42") is None


async def test_sub_only_revokes_the_user_with_cutoff_iat_plus_one(make_client: Any,
                                                                  store_url: str,
                                                                  issuers: Issuers):
    """Cutoff = iat + 1: a token issued earlier in the logout's own second is covered."""
    client = await make_client(store_url, **issuers.env)
    iat = int(time.time()) - 20
    resp = await post(client, signed(issuers.main, logout_claims(sid=None, sub="u-7", iat=iat)))
    assert resp.status == 200
    rec = await stored(client, "sub", "u-7")
    assert rec is not None and rec["issued_before"] == iat + 1
    for token_iat, revoked in ((iat, True), (iat + 1, False)):
        check = await client.post("/v1/check", json={"claims": {"sub": "u-7", "iat": token_iat}},
                                  headers=auth(ADMIN_KEY))
        assert (await check.json())["revoked"] is revoked


async def test_keycloak_revoke_offline_sessions_still_revokes_the_sid_only(
        make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    events = {LOGOUT_EVENT: {}, "revoke_offline_access": True}
    resp = await post(client, signed(issuers.main, logout_claims(sid="s-1", sub="u-1",
                                                                 events=events)))
    assert resp.status == 200
    assert await stored(client, "sid", "s-1") is not None
    assert await stored(client, "sub", "u-1") is None


@pytest.mark.parametrize(("variant", "more"), [
    ("aud list", {"aud": ["someone-else", RP_CLIENT]}),
    ("second audience", {"aud": "second-client"}),
    ("no exp", {"exp": None}),
    ("es256", {}),
    ("no typ header", {}),
    ("typ JWT", {}),
])
async def test_accepted_variants(make_client: Any, issuers: Issuers, variant: str,
                                 more: dict[str, Any]):
    client = await make_client("memory://", **issuers.env)
    alg = "ES256" if variant == "es256" else "RS256"
    typ = {"no typ header": None, "typ JWT": "JWT"}.get(variant, "logout+jwt")
    resp = await post(client, signed(issuers.main, logout_claims(**more), alg=alg, typ=typ))
    assert resp.status == 200, await resp.text()


def _cases(issuers: Issuers) -> dict[str, tuple[str, str]]:
    """name -> (logout token, expected error_description)."""
    now = int(time.time())
    main = issuers.main
    stranger = KeySet(rsa=rsa_key())
    return {
        "not a jwt": ("not-a-jwt", "malformed token"),
        "untrusted issuer": (signed(main, logout_claims(iss="https://evil.test")),
                             "untrusted issuer"),
        "signed by another issuer's keys": (signed(issuers.other, logout_claims()),
                                            "bad signature"),
        "other issuer claimed with main keys": (signed(main, logout_claims(iss=OTHER_IDP)),
                                                "bad signature"),
        "signed by an unknown key": (signed(stranger, logout_claims()), "bad signature"),
        "unknown kid": (signed(main, logout_claims(), kid="nope"), "unknown key"),
        "alg none": (forge({"alg": "none", "kid": "rsa1"}, logout_claims()),
                     "algorithm not allowed"),
        "alg HS256": (sign(HS_SECRET, "HS256", logout_claims(), kid="rsa1"),
                      "algorithm not allowed"),
        "wrong aud": (signed(main, logout_claims(aud="another-rp")), "wrong audience"),
        "no aud": (signed(main, logout_claims(aud=None)), "wrong audience"),
        "no iat": (signed(main, logout_claims(iat=None)), "missing claim: iat"),
        "iat too old": (signed(main, logout_claims(iat=now - 600, exp=now + 60)),
                        "issued too long ago"),
        "iat in the future": (signed(main, logout_claims(iat=now + 600, exp=now + 900)),
                              "issued in the future"),
        "expired": (signed(main, logout_claims(iat=now - 100, exp=now - 60)), "expired"),
        "no jti": (signed(main, logout_claims(jti=None)), "missing claim: jti"),
        "neither sub nor sid": (signed(main, logout_claims(sub=None, sid=None)),
                                "neither sub nor sid"),
        "sub not a string": (signed(main, logout_claims(sub=42)), "malformed token"),
        "no events": (signed(main, logout_claims(events=None)),
                      "events lacks the back-channel logout event"),
        "events without the member": (signed(main, logout_claims(
            events={"http://example.com/other": {}})),
            "events lacks the back-channel logout event"),
        "event member not an object": (signed(main, logout_claims(
            events={LOGOUT_EVENT: True})), "events lacks the back-channel logout event"),
        "nonce present": (signed(main, logout_claims(nonce="n-1")), "nonce is not allowed"),
        "typ of an access token": (signed(main, logout_claims(), typ="at+jwt"),
                                   "typ is not logout+jwt"),
    }


CASE_NAMES = ["not a jwt", "untrusted issuer", "signed by another issuer's keys",
              "other issuer claimed with main keys", "signed by an unknown key", "unknown kid",
              "alg none", "alg HS256", "wrong aud", "no aud", "no iat", "iat too old",
              "iat in the future", "expired", "no jti", "neither sub nor sid",
              "sub not a string", "no events", "events without the member",
              "event member not an object", "nonce present", "typ of an access token"]


@pytest.mark.parametrize("case", CASE_NAMES)
async def test_each_validation_step_refuses(make_client: Any, issuers: Issuers, case: str):
    client = await make_client("memory://", **issuers.env)
    token, description = _cases(issuers)[case]
    resp = await post(client, token)
    assert resp.status == 400
    assert resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {"error": "invalid_request", "error_description": description}
    assert await nothing_stored(client)


async def test_every_case_is_listed(issuers: Issuers):
    assert sorted(_cases(issuers)) == sorted(CASE_NAMES)


async def test_replay_is_refused(make_client: Any, store_url: str, issuers: Issuers):
    client = await make_client(store_url, **issuers.env)
    token = signed(issuers.main, logout_claims(sid="s-replay"))
    assert (await post(client, token)).status == 200
    again = await post(client, token)
    assert again.status == 400
    assert (await again.json())["error_description"] == "logout token already used " \
                                                        "(jti replayed)"


async def test_replay_memory_lasts_until_the_token_could_no_longer_pass(
        make_client: Any, redis_server: RedisProcess, prefix: str, issuers: Issuers):
    client = await make_client(redis_server.url, **issuers.env)
    now = int(time.time())
    payload = logout_claims(jti="jti-ttl", iat=now, exp=now + 60)
    assert (await post(client, signed(issuers.main, payload))).status == 200
    keys = redis_server.cli("--scan", "--pattern", f"{prefix}bcl:*").split()
    assert len(keys) == 1 and keys[0].decode().endswith(":jti-ttl")
    expire_at = int(redis_server.cli("EXPIRETIME", keys[0].decode()))
    assert expire_at == now + 60 + 30 + 1  # exp + leeway (sooner than iat + max age)


async def test_form_problems(make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    missing = await client.post(FORM, data={"other": "x"})
    assert missing.status == 400
    assert (await missing.json())["error"] == "invalid_request"
    as_json = await client.post(FORM, json={"logout_token": "x"})
    assert as_json.status == 400
    assert (await as_json.json())["error"] == "invalid_request"


async def test_no_issuers_configured_refuses_everything(make_client: Any, issuers: Issuers):
    client = await make_client("memory://")
    resp = await post(client, signed(issuers.main, logout_claims()))
    assert resp.status == 400
    assert (await resp.json())["error_description"] == "untrusted issuer"


async def test_issuer_key_rotation_is_picked_up_by_the_first_logout(make_client: Any,
                                                                     issuers: Issuers):
    """A new kid at the identity provider is read at once: providers do not retry."""
    from tests.jwt_factory import jwk, pooled_rsa

    client = await make_client("memory://", **issuers.env)
    new_key = pooled_rsa(2)
    issuers.main_jwks.jwks = {"keys": [jwk(new_key, "rotated", "RS256")]}
    token = sign(new_key, "RS256", logout_claims(sid="after-rotation"), kid="rotated",
                 headers={"typ": "logout+jwt"})
    resp = await post(client, token)
    assert resp.status == 200, await resp.text()
    assert await stored(client, "sid", "after-rotation") is not None


async def test_retry_after_a_store_failure_still_revokes(make_client: Any, issuers: Issuers):
    """A 503 must not burn the jti: the identity provider's retry has to revoke."""
    redis = RedisProcess().start()
    try:
        client = await make_client(redis.url, REVOKER_STORE_TIMEOUT="0.2", **issuers.env)
        token = signed(issuers.main, logout_claims(sid="s-retry"))
        redis.kill()
        assert (await post(client, token)).status == 503
        redis.start()
        resp = await post(client, token)
        assert resp.status == 200, await resp.text()
        assert await stored(client, "sid", "s-retry") is not None
        assert (await post(client, token)).status == 400
    finally:
        redis.stop()
