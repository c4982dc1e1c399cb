"""REVOKER_SSF_EVENT_ACTIONS: which Shared Signals events revoke what, and the metric
that counts every event by type and outcome."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from revoker.config import Settings
from revoker.errors import ConfigError
from tests import idp as fx
from tests.idp import IDP, RP_CLIENT, Issuers, signed
from tests.web.conftest import ADMIN_KEY, Samples, auth, scrape, stored, value

issuers = fx.issuers  # shared fixture
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
DISABLED = RISC + "account-disabled"
COMPROMISED = RISC + "credential-compromise"
CLAIMS_CHANGE = CAEP + "token-claims-change"
APP_COMPROMISED = "https://security.example.test/event/app-compromised"
KEY_COMPROMISED = "https://security.example.test/event/key-compromised"
ISS_SUB = {"format": "iss_sub", "iss": IDP, "sub": "user-1"}
SESSION = {"format": "opaque", "id": "session-9"}
METRIC = "revoker_ssf_events_total"


def make_set(issuers: Issuers, events: dict[str, Any], *, iat: int | None = None) -> str:
    payload = {"iss": IDP, "aud": RP_CLIENT, "iat": iat or int(time.time()) - 5,
               "jti": uuid.uuid4().hex, "events": events}
    return signed(issuers.main, payload, typ="secevent+jwt")


async def push(client: Any, token: str) -> Any:
    return await client.post("/ssf/events", data=token.encode(),
                             headers={"Content-Type": "application/secevent+jwt"})


async def records(client: Any) -> list[tuple[str, str]]:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return sorted((r["kind"], r["value"]) for r in (await resp.json())["items"])


async def counted(client: Any, before: Samples, **labels: str) -> float:
    """How many events with ``labels`` were counted since ``before`` (the metrics are
    process-wide, so every test compares with its own starting point)."""
    _, after = await scrape(client)
    return value(after, METRIC, **labels) - value(before, METRIC, **labels)


def env(issuers: Issuers, actions: str) -> dict[str, str]:
    return {**issuers.env, "REVOKER_SSF_EVENT_ACTIONS": actions}


# -- configuration ---------------------------------------------------------------------------

def test_actions_are_parsed_in_order_and_lower_cased() -> None:
    settings = Settings.from_env({"REVOKER_SSF_EVENT_ACTIONS":
                                  f"{DISABLED}=Ignore, {APP_COMPROMISED}=client"})
    assert settings.ssf_event_actions == ((DISABLED, "ignore"), (APP_COMPROMISED, "client"))


@pytest.mark.parametrize(("text", "message"), [
    (f"{DISABLED}=delete-account", "unknown action 'delete-account'"),
    (f"{DISABLED}", "event-type-uri=action"),
    ("session-revoked=session", "not an event type URI"),
    (f"{DISABLED}=subject,{DISABLED}=ignore", "listed twice"),
])
def test_bad_actions_stop_the_service_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REVOKER_SSF_EVENT_ACTIONS": text})
    assert info.value.variable == "REVOKER_SSF_EVENT_ACTIONS"
    assert message in info.value.message


# -- behaviour ---------------------------------------------------------------------------------

async def test_a_default_can_be_turned_off(make_client: Any, issuers: Issuers) -> None:
    client = await make_client("memory://", **env(issuers, f"{DISABLED}=ignore"))
    _, before = await scrape(client)
    assert (await push(client, make_set(issuers, {DISABLED: {"subject": ISS_SUB}}))).status \
        == 202
    assert await records(client) == []
    assert await counted(client, before, event_type=DISABLED, outcome="ignored",
                         delivery="push") == 1


async def test_defaults_stay_when_other_types_are_configured(make_client: Any,
                                                            issuers: Issuers) -> None:
    client = await make_client("memory://", **env(issuers, f"{CLAIMS_CHANGE}=subject"))
    token = make_set(issuers, {COMPROMISED: {"subject": ISS_SUB},
                               CLAIMS_CHANGE: {"subject": {"format": "email",
                                                           "email": "bob@example.test"}}})
    assert (await push(client, token)).status == 202
    assert await records(client) == [("sub", "bob@example.test"), ("sub", "user-1")]


async def test_session_revoked_can_revoke_the_whole_user(make_client: Any,
                                                         issuers: Issuers) -> None:
    client = await make_client("memory://", **env(issuers, f"{SESSION_REVOKED}=subject"))
    iat = int(time.time()) - 20
    subject = {"format": "complex", "user": ISS_SUB, "session": SESSION}
    token = make_set(issuers, {SESSION_REVOKED: {"subject": subject}}, iat=iat)
    assert (await push(client, token)).status == 202
    assert await records(client) == [("sub", "user-1")]
    record = await stored(client, "sub", "user-1")
    assert record is not None and record["issued_before"] == iat + 1


@pytest.mark.parametrize("subject", [
    {"format": "opaque", "id": "billing-app"},
    {"format": "complex", "application": {"format": "opaque", "id": "billing-app"},
     "user": ISS_SUB},
])
async def test_client_action_revokes_the_application(make_client: Any, issuers: Issuers,
                                                     subject: dict[str, Any]) -> None:
    client = await make_client("memory://", **env(issuers, f"{APP_COMPROMISED}=client"))
    iat = int(time.time()) - 7
    token = make_set(issuers, {APP_COMPROMISED: {"subject": subject}}, iat=iat)
    assert (await push(client, token)).status == 202
    assert await records(client) == [("client", "billing-app")]
    record = await stored(client, "client", "billing-app")
    assert record is not None and record["issued_before"] == iat + 1
    assert record["reason"] == "app-compromised" and record["actor"] == f"ssf:{IDP}"


async def test_key_action_revokes_the_signing_key(make_client: Any, issuers: Issuers) -> None:
    client = await make_client("memory://", **env(issuers, f"{KEY_COMPROMISED}=key"))
    token = make_set(issuers, {KEY_COMPROMISED: {"subject": {"format": "opaque",
                                                             "id": "signing-2025"}}})
    assert (await push(client, token)).status == 202
    assert await records(client) == [("kid", "signing-2025")]


async def test_an_action_its_subject_cannot_serve_refuses_the_set(make_client: Any,
                                                                  issuers: Issuers) -> None:
    """A key cannot be named by an email address: 400, and the other event of the same
    SET is not applied either (the SET is answered as a whole)."""
    client = await make_client("memory://", **env(issuers, f"{KEY_COMPROMISED}=key"))
    _, before = await scrape(client)
    token = make_set(issuers, {DISABLED: {"subject": ISS_SUB},
                               KEY_COMPROMISED: {"subject": {"format": "email",
                                                             "email": "a@example.test"}}})
    resp = await push(client, token)
    assert resp.status == 400 and (await resp.json())["err"] == "invalid_request"
    assert await records(client) == []
    assert await counted(client, before, event_type=KEY_COMPROMISED, outcome="refused") == 1
    assert await counted(client, before, outcome="applied") == 0


async def test_every_event_is_counted_by_type_and_outcome(make_client: Any,
                                                          issuers: Issuers) -> None:
    client = await make_client("memory://", **issuers.env)
    _, before = await scrape(client)
    unknown = "https://vendor.example.test/event/" + uuid.uuid4().hex
    for events in ({SESSION_REVOKED: {"subject": SESSION}},
                   {DISABLED: {"subject": ISS_SUB}, unknown: {"subject": ISS_SUB}},
                   {SESSION_REVOKED: {"subject": ISS_SUB}}):
        assert (await push(client, make_set(issuers, events))).status == 202
    assert await counted(client, before, event_type=SESSION_REVOKED, outcome="applied") == 2
    assert await counted(client, before, event_type=DISABLED, outcome="applied") == 1
    # an unknown type never becomes a label of its own: the label set stays bounded
    assert await counted(client, before, event_type="other", outcome="ignored") == 1
    _, after = await scrape(client)
    assert value(after, METRIC, event_type=unknown) == 0
    assert await records(client) == [("sid", "session-9"), ("sub", "user-1")]


async def test_stream_verification_events_are_accepted_and_counted(make_client: Any,
                                                                   issuers: Issuers) -> None:
    verification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
    client = await make_client("memory://", **issuers.env)
    _, before = await scrape(client)
    token = make_set(issuers, {verification: {"state": "VGhpcyBpcyBhbiBleGFtcGxl"}})
    assert (await push(client, token)).status == 202
    assert await records(client) == []
    assert await counted(client, before, event_type=verification, outcome="ignored") == 1
