"""POST /ssf/events: RFC 8935 push of CAEP / RISC Security Event Tokens."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests import idp as fx
from tests.idp import IDP, RP_CLIENT, Issuers, signed
from tests.jwt_factory import KeySet, rsa_key
from tests.web.conftest import ADMIN_KEY, auth, stored

issuers = fx.issuers  # shared fixture
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
DISABLED = RISC + "account-disabled"
COMPROMISED = RISC + "credential-compromise"
SET_TYPE = "application/secevent+jwt"


def set_claims(events: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"iss": IDP, "aud": RP_CLIENT, "iat": int(time.time()) - 5,
                               "jti": uuid.uuid4().hex, "events": events}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def make_set(keys: KeySet, events: dict[str, Any], *, typ: str | None = "secevent+jwt",
             **overrides: Any) -> str:
    return signed(keys, set_claims(events, **overrides), typ=typ)


async def push(client: Any, token: str, content_type: str = SET_TYPE) -> Any:
    return await client.post("/ssf/events", data=token.encode(),
                             headers={"Content-Type": content_type})



async def all_records(client: Any) -> list[tuple[str, str]]:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return sorted((r["kind"], r["value"]) for r in (await resp.json())["items"])


ISS_SUB = {"format": "iss_sub", "iss": IDP, "sub": "user-1"}
OPAQUE_SESSION = {"format": "opaque", "id": "dMTlD|1600802906337.16|16008.16"}
EMAIL = {"format": "email", "email": "alice@example.com"}
COMPLEX = {"format": "complex", "user": ISS_SUB, "session": OPAQUE_SESSION}


@pytest.mark.parametrize(("subject", "expected"), [
    (ISS_SUB, [("sub", "user-1")]),
    (OPAQUE_SESSION, [("sid", OPAQUE_SESSION["id"])]),
    (EMAIL, [("sub", "alice@example.com")]),
    (COMPLEX, [("sid", OPAQUE_SESSION["id"])]),
    ({"format": "complex", "user": EMAIL}, [("sub", "alice@example.com")]),
])
async def test_session_revoked_for_each_subject_format(make_client: Any, store_url: str,
                                                       issuers: Issuers, subject: dict,
                                                       expected: list):
    client = await make_client(store_url, **issuers.env)
    token = make_set(issuers.main, {SESSION_REVOKED: {"subject": subject,
                                                      "event_timestamp": 1}})
    resp = await push(client, token)
    assert resp.status == 202, await resp.text()
    assert await all_records(client) == expected
    kind, value = expected[0]
    rec = await stored(client, kind, value)
    assert rec is not None and rec["actor"] == f"ssf:{IDP}"
    assert rec["reason"] == "session-revoked"


async def test_sub_cutoff_is_the_set_iat_plus_one(make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    iat = int(time.time()) - 40
    token = make_set(issuers.main, {SESSION_REVOKED: {"subject": ISS_SUB}}, iat=iat)
    assert (await push(client, token)).status == 202
    rec = await stored(client, "sub", "user-1")
    assert rec is not None and rec["issued_before"] == iat + 1


async def test_ssf_1_0_sub_id_claim_is_the_subject(make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    token = make_set(issuers.main, {SESSION_REVOKED: {}}, sub_id=COMPLEX)
    assert (await push(client, token)).status == 202
    assert await all_records(client) == [("sid", OPAQUE_SESSION["id"])]


@pytest.mark.parametrize(("event", "subject", "value"), [
    (DISABLED, ISS_SUB, "user-1"),
    (DISABLED, {"format": "opaque", "id": "u-opaque"}, "u-opaque"),
    (COMPROMISED, EMAIL, "alice@example.com"),
    (COMPROMISED, COMPLEX, "user-1"),
])
async def test_risc_account_events_revoke_the_user(make_client: Any, store_url: str,
                                                   issuers: Issuers, event: str,
                                                   subject: dict, value: str):
    client = await make_client(store_url, **issuers.env)
    token = make_set(issuers.main, {event: {"subject": subject}})
    assert (await push(client, token)).status == 202
    assert await all_records(client) == [("sub", value)]
    rec = await stored(client, "sub", value)
    assert rec is not None and rec["reason"] == event.rsplit("/", 1)[-1]


async def test_same_set_twice_is_harmless(make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    token = make_set(issuers.main, {DISABLED: {"subject": ISS_SUB}})
    assert (await push(client, token)).status == 202
    first = await stored(client, "sub", "user-1")
    assert (await push(client, token)).status == 202
    assert await stored(client, "sub", "user-1") == first


async def test_unknown_events_are_accepted_and_ignored(make_client: Any, issuers: Issuers):
    client = await make_client("memory://", **issuers.env)
    token = make_set(issuers.main, {CAEP + "token-claims-change": {"subject": ISS_SUB}})
    assert (await push(client, token)).status == 202
    assert await all_records(client) == []


def _bad_sets(issuers: Issuers) -> dict[str, tuple[str, str, str]]:
    """name -> (body, content type, expected err)."""
    main = issuers.main
    ok_events = {DISABLED: {"subject": ISS_SUB}}
    return {
        "json body": ('{"events": {}}', "application/json", "invalid_request"),
        "not a jwt": ("not-a-jwt", SET_TYPE, "invalid_request"),
        "untrusted issuer": (make_set(main, ok_events, iss="https://evil.test"), SET_TYPE,
                             "invalid_issuer"),
        "unknown signing key": (make_set(KeySet(rsa=rsa_key()), ok_events), SET_TYPE,
                                "invalid_key"),
        "unknown kid": (signed(main, set_claims(ok_events), kid="nope", typ="secevent+jwt"),
                        SET_TYPE, "invalid_key"),
        "wrong audience": (make_set(main, ok_events, aud="someone-else"), SET_TYPE,
                           "invalid_audience"),
        "no iat": (make_set(main, ok_events, iat=None), SET_TYPE, "invalid_request"),
        "no jti": (make_set(main, ok_events, jti=None), SET_TYPE, "invalid_request"),
        "no events": (signed(main, {k: v for k, v in set_claims(ok_events).items()
                                    if k != "events"}, typ="secevent+jwt"), SET_TYPE,
                      "invalid_request"),
        "typ of a logout token": (make_set(main, ok_events, typ="logout+jwt"), SET_TYPE,
                                  "invalid_request"),
        "unsupported subject format": (make_set(main, {DISABLED: {"subject": {
            "format": "phone_number", "phone_number": "+12065550100"}}}), SET_TYPE,
            "invalid_request"),
        "subject of a foreign issuer": (make_set(main, {DISABLED: {"subject": {
            "format": "iss_sub", "iss": "https://elsewhere.test", "sub": "x"}}}), SET_TYPE,
            "invalid_request"),
        "no subject": (make_set(main, {DISABLED: {}}), SET_TYPE, "invalid_request"),
        "account event with a session only": (make_set(main, {DISABLED: {
            "subject": {"format": "complex", "session": OPAQUE_SESSION}}}),
            SET_TYPE, "invalid_request"),
    }


BAD_NAMES = ["json body", "not a jwt", "untrusted issuer", "unknown signing key", "unknown kid",
             "wrong audience", "no iat", "no jti", "no events", "typ of a logout token",
             "unsupported subject format", "subject of a foreign issuer", "no subject",
             "account event with a session only"]


@pytest.mark.parametrize("case", BAD_NAMES)
async def test_bad_sets_are_400_with_rfc8935_errors(make_client: Any, issuers: Issuers,
                                                    case: str):
    client = await make_client("memory://", **issuers.env)
    body, content_type, err = _bad_sets(issuers)[case]
    resp = await push(client, body, content_type)
    assert resp.status == 400
    data = await resp.json()
    assert data["err"] == err and isinstance(data["description"], str) and data["description"]
    assert await all_records(client) == []


async def test_every_bad_case_is_listed(issuers: Issuers):
    assert sorted(_bad_sets(issuers)) == sorted(BAD_NAMES)
