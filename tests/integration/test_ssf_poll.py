"""RFC 8936 poll delivery: revoker polls a transmitter (tests/ssf_transmitter.py) and
applies the SETs it gets exactly as pushed ones."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from revoker.config import Settings
from revoker.errors import ConfigError
from revoker.web.app import create_app
from revoker.web.ssf_poll import POLL_CONFIG
from tests import idp as fx
from tests.idp import IDP, RP_CLIENT, Issuers, signed
from tests.jwt_factory import KeySet, rsa_key
from tests.ssf_transmitter import SsfTransmitter
from tests.web import conftest as web_fixtures
from tests.web.conftest import ADMIN_KEY, auth, scrape, stored, value

issuers = fx.issuers  # shared fixtures
make_client, store_url = web_fixtures.make_client, web_fixtures.store_url
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
DISABLED = RISC + "account-disabled"
SESSION_REVOKED = CAEP + "session-revoked"
TOKEN = "transmitter-issued-bearer-token"
DEADLINE_S = 10.0


@pytest.fixture
async def transmitter() -> AsyncIterator[SsfTransmitter]:
    server = await SsfTransmitter(token=TOKEN).start()
    yield server
    await server.stop()


def poll_env(issuers: Issuers, transmitter: SsfTransmitter, **extra: str) -> dict[str, str]:
    return {**issuers.env, "REVOKER_SSF_POLL_URL": transmitter.url,
            "REVOKER_SSF_POLL_TOKEN": TOKEN, "REVOKER_SSF_POLL_MAX_EVENTS": "3", **extra}


def fast_retries(app: web.Application) -> None:
    """Back-off in tens of milliseconds instead of seconds, so a restart test is short."""
    app[POLL_CONFIG] = dataclasses.replace(app[POLL_CONFIG], initial_backoff_s=0.05,
                                           max_backoff_s=0.2, min_interval_s=0.05)


def make_set(keys: KeySet, events: dict[str, Any], **overrides: Any) -> str:
    payload = {"iss": IDP, "aud": RP_CLIENT, "iat": int(time.time()) - 5,
               "jti": uuid.uuid4().hex, "events": events, **overrides}
    return signed(keys, payload, typ="secevent+jwt")


def disabled(keys: KeySet, sub: str, **overrides: Any) -> str:
    subject = {"format": "iss_sub", "iss": IDP, "sub": sub}
    return make_set(keys, {DISABLED: {"subject": subject}}, **overrides)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait, with a deadline, for the poller to have done something observable."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def records(client: Any) -> list[tuple[str, str]]:
    resp = await client.get("/v1/revocations", headers=auth(ADMIN_KEY))
    return sorted((r["kind"], r["value"]) for r in (await resp.json())["items"])


async def test_sets_are_polled_applied_and_acknowledged(make_client: Any, store_url: str,
                                                        issuers: Issuers,
                                                        transmitter: SsfTransmitter) -> None:
    transmitter.publish("set-1", disabled(issuers.main, "user-1"))
    transmitter.publish("set-2", make_set(issuers.main, {SESSION_REVOKED: {
        "subject": {"format": "opaque", "id": "session-1"}}}))
    client = await make_client(store_url, **poll_env(issuers, transmitter))
    await until(lambda: {"set-1", "set-2"} <= set(transmitter.acked), "both are acked")
    assert await records(client) == [("sid", "session-1"), ("sub", "user-1")]
    record = await stored(client, "sub", "user-1")
    assert record is not None and record["actor"] == f"ssf:{IDP}"
    first = transmitter.requests[0]
    assert first["returnImmediately"] is False and first["maxEvents"] == 3
    assert first["ack"] == [] and "setErrs" not in first
    assert transmitter.errors == {} and transmitter.refused_auth == 0


async def test_refused_sets_are_reported_with_rfc_error_codes(make_client: Any,
                                                              issuers: Issuers,
                                                              transmitter: SsfTransmitter
                                                              ) -> None:
    bad = {
        "foreign-key": (disabled(KeySet(rsa=rsa_key()), "u-a"), "invalid_key"),
        "wrong-aud": (disabled(issuers.main, "u-b", aud="someone-else"), "invalid_audience"),
        "wrong-iss": (disabled(issuers.main, "u-c", iss="https://evil.test"),
                      "invalid_issuer"),
        "too-old": (disabled(issuers.main, "u-d", iat=int(time.time()) - 200_000),
                    "invalid_request"),
        "not-a-jws": ("not-a-jwt", "invalid_request"),
        "not-a-string": ({"events": {}}, "invalid_request"),
        "no-subject": (make_set(issuers.main, {DISABLED: {}}), "invalid_request"),
    }
    for jti, (token, _) in bad.items():
        transmitter.publish(jti, token)
    transmitter.publish("good", disabled(issuers.main, "user-ok"))
    client = await make_client("memory://", **poll_env(issuers, transmitter,
                                                       REVOKER_SSF_POLL_MAX_EVENTS="10"))
    await until(lambda: set(bad) <= set(transmitter.errors) and "good" in transmitter.acked,
                "every SET is settled")
    assert {jti: e["err"] for jti, e in transmitter.errors.items()} == {
        jti: err for jti, (_, err) in bad.items()}
    assert all(e["description"] for e in transmitter.errors.values())
    assert await records(client) == [("sub", "user-ok")]
    assert not set(bad) & set(transmitter.acked)


async def test_duplicated_sets_change_nothing(make_client: Any, issuers: Issuers,
                                              transmitter: SsfTransmitter) -> None:
    token = disabled(issuers.main, "user-1")
    transmitter.publish("dup", token)
    client = await make_client("memory://", **poll_env(issuers, transmitter))
    await until(lambda: "dup" in transmitter.acked, "the first delivery is acked")
    first = await stored(client, "sub", "user-1")
    # the transmitter lost the ack and delivers it again, and a copy under another key
    transmitter.publish("dup", token)
    transmitter.publish("dup-copy", token)
    await until(lambda: transmitter.acked.count("dup") == 2 and "dup-copy" in transmitter.acked,
                "the duplicates are acked")
    assert await stored(client, "sub", "user-1") == first
    assert await records(client) == [("sub", "user-1")]


async def test_reordered_sets_end_with_the_latest_cutoff(make_client: Any, issuers: Issuers,
                                                         transmitter: SsfTransmitter) -> None:
    now = int(time.time())
    transmitter.publish("newer", disabled(issuers.main, "user-1", iat=now - 5))
    transmitter.publish("older", disabled(issuers.main, "user-1", iat=now - 60))
    client = await make_client("memory://", **poll_env(issuers, transmitter))
    await until(lambda: {"newer", "older"} <= set(transmitter.acked), "both are acked")
    record = await stored(client, "sub", "user-1")
    assert record is not None and record["issued_before"] == now - 5 + 1


async def test_max_events_is_honoured_and_more_is_fetched_at_once(
        make_client: Any, issuers: Issuers, transmitter: SsfTransmitter) -> None:
    for index in range(7):
        transmitter.publish(f"s{index}", disabled(issuers.main, f"user-{index}"))
    client = await make_client("memory://", **poll_env(issuers, transmitter))
    await until(lambda: len(set(transmitter.acked)) == 7, "all seven are acked")
    assert max(transmitter.served) == 3
    assert len(await records(client)) == 7


async def test_a_transmitter_restart_is_survived(make_client: Any, issuers: Issuers,
                                                 transmitter: SsfTransmitter) -> None:
    transmitter.publish("before", disabled(issuers.main, "user-1"))
    client = await make_client("memory://", customize=fast_retries,
                               **poll_env(issuers, transmitter))
    await until(lambda: "before" in transmitter.acked, "the first SET is acked")
    _, start = await scrape(client)
    await transmitter.stop()
    transmitter.publish("during", disabled(issuers.main, "user-2"))
    errors = value(start, "revoker_ssf_polls_total", result="error")
    deadline = time.monotonic() + DEADLINE_S
    while value((await scrape(client))[1], "revoker_ssf_polls_total",
                result="error") <= errors:
        assert time.monotonic() < deadline, "the failed polls were not counted"
        await asyncio.sleep(0.02)
    await transmitter.start()
    transmitter.fail_next(2)  # and it answers 503 for a moment after its start
    await until(lambda: "during" in transmitter.acked, "the SET queued meanwhile is acked")
    assert await records(client) == [("sub", "user-1"), ("sub", "user-2")]


async def test_a_wrong_credential_is_retried_and_nothing_is_applied(
        make_client: Any, issuers: Issuers, transmitter: SsfTransmitter) -> None:
    transmitter.publish("x", disabled(issuers.main, "user-1"))
    client = await make_client("memory://", customize=fast_retries,
                               **poll_env(issuers, transmitter,
                                          REVOKER_SSF_POLL_TOKEN="wrong"))
    await until(lambda: transmitter.refused_auth >= 2, "the poller has retried")
    assert await records(client) == [] and transmitter.requests == []
    assert (await client.get("/healthz")).status == 200


def test_poll_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="REVOKER_SSF_POLL_URL"):
        Settings.from_env({"REVOKER_SSF_POLL_URL": "http://transmitter.example.test/poll",
                           "REVOKER_OIDC_ISSUERS": f"{IDP}=https://idp.test/jwks",
                           "REVOKER_OIDC_AUDIENCE": RP_CLIENT})
    with pytest.raises(ConfigError, match="needs REVOKER_OIDC_ISSUERS"):
        Settings.from_env({"REVOKER_SSF_POLL_URL": "https://transmitter.example.test/poll"})


def test_several_workers_poll_only_where_the_server_installs_it() -> None:
    """With REVOKER_WORKERS > 1 the app alone does not poll: one poller per service."""
    settings = Settings.from_env({"REVOKER_STORE_URL": "redis://127.0.0.1:1",
                                  "REVOKER_WORKERS": "2",
                                  "REVOKER_SSF_POLL_URL": "https://t.example.test/poll",
                                  "REVOKER_OIDC_ISSUERS": f"{IDP}=https://idp.test/jwks",
                                  "REVOKER_OIDC_AUDIENCE": RP_CLIENT})
    single = create_app(dataclasses.replace(settings, workers=1, store_url="memory://"))
    several = create_app(settings)
    assert POLL_CONFIG in several and POLL_CONFIG in single
    assert len(several.cleanup_ctx) == len(single.cleanup_ctx) - 1
