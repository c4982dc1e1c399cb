"""Shared Signals stream management: a real ``revoker serve`` (on a real Redis) connects
itself to a transmitter (tests/ssf_transmitter.py) that speaks SSF 1.0 stream management,
and ``revoker ssf-stream`` reads and resets that stream."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from revoker import apikeys
from revoker.config import Settings
from revoker.errors import ConfigError
from tests.jwt_factory import KeySet
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess
from tests.ssf_transmitter import POLL, PUSH, SsfTransmitter

TOKEN = "transmitter-management-token"
WRONG_TOKEN = "not-the-transmitter-token-0123456789"
AUDIENCE = "revoker-rp"
ADMIN = "rvk_ssf_stream_admin_key_000000000000"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
DISABLED = RISC + "account-disabled"
COMPROMISE = RISC + "credential-compromise"
DEFAULT_EVENTS = sorted([SESSION_REVOKED, DISABLED, COMPROMISE])
DEADLINE_S = 15.0


@pytest.fixture
async def transmitter() -> AsyncIterator[SsfTransmitter]:
    """Not started: each test starts it (or, for an outage, starts it late)."""
    server = SsfTransmitter(token=TOKEN, keys=KeySet(), audience=AUDIENCE,
                            events_supported=(SESSION_REVOKED, DISABLED, COMPROMISE))
    yield server
    await server.stop()


Launch = Callable[..., Awaitable[ServeProcess]]
BeforeStart = Callable[[ServeProcess], Awaitable[None]]


@pytest.fixture
async def launch(redis_server: RedisProcess, prefix: str,
                 transmitter: SsfTransmitter) -> AsyncIterator[Launch]:
    """Start ``revoker serve`` managing a stream at ``transmitter`` (push to its own URL
    unless told otherwise); ``before_start`` sees the process before it starts."""
    started: list[ServeProcess] = []

    async def start(before_start: BeforeStart | None = None, **extra: str) -> ServeProcess:
        proc = ServeProcess({
            "REVOKER_STORE_URL": redis_server.url, "REVOKER_KEY_PREFIX": prefix,
            "REVOKER_API_KEYS": apikeys.config_line("ops", ["admin"], ADMIN),
            "REVOKER_ACCESS_LOG": "false",
            "REVOKER_OIDC_ISSUERS": f"{transmitter.issuer}={transmitter.jwks_url}",
            "REVOKER_OIDC_AUDIENCE": AUDIENCE, "REVOKER_JWKS_MIN_REFETCH_INTERVAL": "0",
            "REVOKER_SSF_TRANSMITTER": transmitter.issuer,
            "REVOKER_SSF_TRANSMITTER_TOKEN": TOKEN, **extra}, log_to_file=True)
        proc.env.setdefault("REVOKER_PUBLIC_URL", proc.url)
        started.append(proc)
        if before_start is not None:
            await before_start(proc)
        await asyncio.to_thread(proc.start)  # the transmitter keeps answering meanwhile
        return proc

    yield start
    for proc in started:
        await asyncio.to_thread(proc.stop)
        proc.remove_log()


async def readyz(proc: ServeProcess) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, \
            session.get(proc.url + "/readyz") as resp:
        return resp.status, await resp.json(content_type=None)


async def until_stream(proc: ServeProcess, condition: Callable[[dict[str, Any]], bool],
                       what: str) -> dict[str, Any]:
    """The ``ssf_stream`` readiness detail once ``condition`` holds (with a deadline);
    /readyz must answer 200 all along."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status, body = await readyz(proc)
        assert status == 200, body
        detail: dict[str, Any] = body["checks"]["ssf_stream"]
        if condition(detail):
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}: {detail}")
        await asyncio.sleep(0.05)


def verified(detail: dict[str, Any]) -> bool:
    return bool(detail["verified"])


async def cli(proc: ServeProcess, *args: str) -> tuple[int, str, str]:
    """``revoker ssf-stream ...`` with the service's own environment."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "revoker", "ssf-stream", *args, env=proc.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_a_push_stream_is_created_for_the_events_acted_on_and_verified(
        launch: Launch, transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    proc = await launch(REVOKER_SSF_EVENT_ACTIONS=f"{DISABLED}=ignore,"
                                                  f"{CREDENTIAL_CHANGE}=subject")
    detail = await until_stream(proc, verified, "the stream is verified")
    [stream] = transmitter.streams.values()
    assert stream["delivery"] == {"method": PUSH, "endpoint_url": proc.url + "/ssf/events"}
    assert stream["events_requested"] == sorted([SESSION_REVOKED, COMPROMISE,
                                                 CREDENTIAL_CHANGE])
    assert detail["stream_id"] == stream["stream_id"] and detail["status"] == "enabled"
    assert detail["delivery"] == "push" and detail["last_error"] is None
    assert isinstance(detail["verified_at"], int)
    assert transmitter.pushed == [202]  # the verification SET, accepted by /ssf/events
    verifications = [body for method, path, body in transmitter.calls if path == "/ssf/verify"]
    assert len(verifications) == 1 and len(verifications[0]["state"]) >= 32


async def test_an_existing_stream_is_updated_not_duplicated(
        launch: Launch, transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    existing: list[str] = []

    async def left_by_an_earlier_run(proc: ServeProcess) -> None:
        """The stream an earlier run of this service made, with an older event list."""
        async with aiohttp.ClientSession() as session, session.post(
                transmitter.issuer + "/ssf/stream",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"events_requested": [SESSION_REVOKED], "delivery": {
                    "method": PUSH, "endpoint_url": proc.url + "/ssf/events"}}) as resp:
            assert resp.status == 201
            existing.append((await resp.json())["stream_id"])
        transmitter.calls.clear()

    proc = await launch(left_by_an_earlier_run)
    detail = await until_stream(proc, verified, "the stream is verified")
    assert list(transmitter.streams) == existing and detail["stream_id"] == existing[0]
    assert transmitter.streams[existing[0]]["events_requested"] == DEFAULT_EVENTS
    methods = [(method, path) for method, path, _ in transmitter.calls]
    assert ("PATCH", "/ssf/stream") in methods and ("POST", "/ssf/stream") not in methods


async def test_poll_delivery_polls_the_endpoint_the_transmitter_names(
        launch: Launch, transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    proc = await launch(REVOKER_SSF_DELIVERY="poll")
    detail = await until_stream(proc, verified, "the stream is verified")
    [stream] = transmitter.streams.values()
    assert stream["delivery"] == {"method": POLL, "endpoint_url": transmitter.url}
    assert detail["delivery"] == "poll" and transmitter.acked  # the verification SET
    subject = {"format": "iss_sub", "iss": transmitter.issuer, "sub": "user-1"}
    await transmitter.send(stream["stream_id"], {DISABLED: {"subject": subject}})
    deadline = time.monotonic() + DEADLINE_S
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(proc.url + "/v1/revocations/sub/user-1",
                                   headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
                if resp.status == 200:
                    break
            assert time.monotonic() < deadline, "the polled SET was not applied"
            await asyncio.sleep(0.05)


async def test_a_transmitter_down_at_start_is_retried_while_the_service_is_ready(
        launch: Launch, transmitter: SsfTransmitter) -> None:
    proc = await launch()
    detail = await until_stream(proc, lambda d: d["last_error"] is not None,
                                "the failure is reported")
    assert "ssf-configuration" in detail["last_error"] and not detail["verified"]
    assert detail["status"] == "unknown" and detail["stream_id"] is None
    await transmitter.start()
    detail = await until_stream(proc, verified, "the stream is verified after the outage")
    assert detail["last_error"] is None and len(transmitter.streams) == 1
    assert "Shared Signals stream management" in proc.log


async def test_a_refused_token_is_a_clear_error_in_readyz_and_the_log(
        launch: Launch, transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    proc = await launch(REVOKER_SSF_TRANSMITTER_TOKEN=WRONG_TOKEN)
    detail = await until_stream(proc, lambda d: d["last_error"] is not None,
                                "the refusal is reported")
    assert "refused the credential (401)" in detail["last_error"]
    assert "REVOKER_SSF_TRANSMITTER_TOKEN" in detail["last_error"]
    assert "refused the credential (401)" in proc.log
    assert WRONG_TOKEN not in proc.log and WRONG_TOKEN not in json.dumps(detail)
    assert transmitter.streams == {} and transmitter.refused_auth >= 1


async def test_the_cli_shows_and_resets_the_stream(launch: Launch,
                                                   transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    proc = await launch()
    detail = await until_stream(proc, verified, "the stream is verified")
    code, out, err = await cli(proc, "show", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["stream"]["stream_id"] == detail["stream_id"]
    assert shown["status"]["status"] == "enabled"
    code, out, err = await cli(proc, "show")
    assert code == 0 and detail["stream_id"] in out and "enabled" in out, err
    code, out, err = await cli(proc, "reset", "--json")
    assert code == 0, err
    reset = json.loads(out)
    assert reset["deleted"] == detail["stream_id"]
    assert list(transmitter.streams) == [reset["stream"]["stream_id"]] != [detail["stream_id"]]
    assert transmitter.streams[reset["stream"]["stream_id"]]["events_requested"] == \
        DEFAULT_EVENTS


async def test_the_cli_reports_a_refused_token(launch: Launch,
                                               transmitter: SsfTransmitter) -> None:
    await transmitter.start()
    proc = await launch(REVOKER_SSF_TRANSMITTER_TOKEN=WRONG_TOKEN)
    code, _, err = await cli(proc, "show")
    assert code == 1 and "refused the credential (401)" in err and WRONG_TOKEN not in err


def base_env(**extra: str) -> dict[str, str]:
    return {"REVOKER_OIDC_ISSUERS": "https://tr.example.test=https://tr.example.test/jwks",
            "REVOKER_OIDC_AUDIENCE": AUDIENCE,
            "REVOKER_SSF_TRANSMITTER": "https://tr.example.test", **extra}


@pytest.mark.parametrize(("env", "variable"), [
    (base_env(REVOKER_PUBLIC_URL="https://revoker.example.test",
              REVOKER_SSF_TRANSMITTER="https://untrusted.example.test"),
     "REVOKER_SSF_TRANSMITTER"),
    (base_env(), "REVOKER_PUBLIC_URL"),
    (base_env(REVOKER_PUBLIC_URL="https://r.example.test",
              REVOKER_SSF_TRANSMITTER="http://tr.example.test"), "REVOKER_SSF_TRANSMITTER"),
    (base_env(REVOKER_SSF_DELIVERY="carrier-pigeon"), "REVOKER_SSF_DELIVERY"),
    ({"REVOKER_SSF_TRANSMITTER_TOKEN": "t"}, "REVOKER_SSF_TRANSMITTER_TOKEN"),
])
def test_stream_settings_are_checked_at_start(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert variable in str(caught.value)


def test_poll_delivery_needs_no_public_url() -> None:
    settings = Settings.from_env(base_env(REVOKER_SSF_DELIVERY="POLL"))
    assert settings.ssf_delivery == "poll" and settings.ssf_transmitter_token is None
