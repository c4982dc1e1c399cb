"""Logs: a full session never leaks token or key material; JSON lines; request ids.

Every record of every logger is captured at DEBUG (more than production logs) and
rendered with both formatters, and each rendering is scanned for the secrets the session
used: API keys (valid and invalid), the JWT signing secret, and every token's payload and
signature segments.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from revoker import logs
from revoker.config import Settings
from revoker.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, TextFormatter
from revoker.web.app import create_app
from tests.lane_server import LaneTestServer
from tests.web.conftest import ADMIN_KEY, CHECK_KEY, KEYS_ENV, REVOKE_KEY, MakeClient, auth

JWT_SECRET = "jwt-signing-secret-never-logged-0123456789abcdef"
WRONG_KEY = "rvk_wrong_key_that_must_not_be_logged_42"


def make_token(jti: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"jti": jti, "sub": "alice@example.com", "iat": now, "exp": now + 600,
               "sid": "session-1", **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def secrets_of(tokens: list[str]) -> list[str]:
    """What must never appear: keys, the signing secret, and each token's parts (the
    header segment alone is a generic constant, so it is not a secret)."""
    found = [ADMIN_KEY, REVOKE_KEY, CHECK_KEY, WRONG_KEY, JWT_SECRET]
    for token in tokens:
        _, payload, signature = token.split(".")
        found += [token, payload, signature]
    return found


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


async def run_session(client: Any, tokens: dict[str, str]) -> None:
    """Revoke, check, authz, introspect and a series of failures."""
    revoked, live, expired = tokens["revoked"], tokens["live"], tokens["expired"]
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/revocations", {"json": {"token": revoked, "reason": "stolen"},
                                     "headers": auth(REVOKE_KEY)}),
        ("POST", "/v1/revocations", {"json": {"token": expired}, "headers": auth(REVOKE_KEY)}),
        ("POST", "/v1/revocations", {"json": {"kind": "sub", "value": "mallory"},
                                     "headers": auth(ADMIN_KEY)}),
        ("POST", "/v1/check", {"json": {"token": revoked}, "headers": auth(CHECK_KEY)}),
        ("POST", "/v1/check", {"json": {"token": live}, "headers": auth(CHECK_KEY)}),
        ("POST", "/v1/check/batch", {"json": {"items": [{"token": live}, {"token": revoked}]},
                                     "headers": auth(CHECK_KEY)}),
        ("GET", "/v1/authz", {"headers": {"Authorization": f"Bearer {live}",
                                          "X-Revoker-Key": CHECK_KEY}}),
        ("GET", "/v1/authz/some/path", {"headers": {"Authorization": f"Bearer {revoked}",
                                                    "X-Revoker-Key": CHECK_KEY}}),
        ("GET", "/v1/authz", {"headers": {"Authorization": f"Bearer {expired}",
                                          "X-Revoker-Key": CHECK_KEY}}),
        ("POST", "/oauth2/introspect", {"data": {"token": revoked},
                                        "headers": auth(CHECK_KEY)}),
        # Failures: wrong keys, malformed tokens and bodies, missing scope, unknown routes.
        ("POST", "/v1/check", {"json": {"token": live}, "headers": auth(WRONG_KEY)}),
        ("GET", "/v1/authz", {"headers": {"Authorization": f"Bearer {live}",
                                          "X-Revoker-Key": WRONG_KEY}}),
        ("POST", "/v1/check", {"json": {"token": live[:-7] + "garbage"},
                               "headers": auth(CHECK_KEY)}),
        ("POST", "/v1/check", {"data": f'{{"token": "{live}"', "headers": {
            **auth(CHECK_KEY), "Content-Type": "application/json"}}),
        ("POST", "/v1/revocations", {"json": {"token": live}, "headers": auth(CHECK_KEY)}),
        ("DELETE", "/v1/revocations/jti/x", {"headers": auth(REVOKE_KEY)}),
        ("GET", f"/nowhere/{WRONG_KEY}", {"headers": {"X-Revoker-Key": WRONG_KEY}}),
        ("POST", "/v1/logout", {"headers": {"Authorization": f"Bearer {live}"}}),
        ("POST", "/oauth2/revoke", {"data": {"token": live}, "headers": auth(REVOKE_KEY)}),
    ]
    statuses = []
    for method, path, kwargs in calls:
        resp = await client.request(method, path, **kwargs)
        await resp.read()
        statuses.append(resp.status)
    assert all(status < 500 for status in statuses), statuses
    assert 401 in statuses and 400 in statuses and 403 in statuses


async def test_a_full_session_logs_no_token_or_key_material(
        store_url: str, prefix: str, captured: pytest.LogCaptureFixture) -> None:
    now = int(time.time())
    tokens = {"revoked": make_token("jti-revoked"), "live": make_token("jti-live"),
              "expired": make_token("jti-expired", iat=now - 900, exp=now - 300)}
    settings = Settings.from_env({
        "REVOKER_STORE_URL": store_url, "REVOKER_API_KEYS": KEYS_ENV,
        "REVOKER_KEY_PREFIX": prefix, "REVOKER_ACCESS_LOG": "true",
        "REVOKER_JWT_ALGORITHMS": "HS256", "REVOKER_JWT_SECRET": JWT_SECRET})
    server = LaneTestServer(create_app(settings))
    await server.start_server(access_log=None)  # as revoker.server runs it
    client = TestClient(server)
    try:
        await run_session(client, tokens)
    finally:
        await client.close()  # shutdown logging is part of the session too

    records = captured.records
    assert any(r.name == "revoker.access" for r in records), "the access log was on"
    renderings = [JsonFormatter(), TextFormatter()]
    lines = [fmt.format(record) for record in records for fmt in renderings]
    lines += [repr(vars(record)) for record in records]
    for secret in secrets_of(list(tokens.values())):
        leaking = [line for line in lines if secret in line]
        assert not leaking, f"secret material in logs: {leaking[:1]}"
    assert not [line for line in lines if "Bearer " in line], "no Authorization header logged"


async def test_access_log_lines_carry_the_request_id(
        make_client: MakeClient, captured: pytest.LogCaptureFixture) -> None:
    client = await make_client(REVOKER_ACCESS_LOG="true")
    resp = await client.get("/v1/check/abc", headers={**auth(CHECK_KEY),
                                                       "X-Request-Id": "trace-42.a:b"})
    assert resp.headers["X-Request-Id"] == "trace-42.a:b"
    resp = await client.get("/v1/check/abc", headers=auth(CHECK_KEY))
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 32 and generated != "trace-42.a:b"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert resp.headers["X-Request-Id"] != "bad id\twith tab", "unsafe ids are replaced"

    access = [r for r in captured.records if r.name == "revoker.access"]
    entries = [json.loads(JsonFormatter().format(record)) for record in access]
    assert [e["request_id"] for e in entries][:2] == ["trace-42.a:b", generated]
    first = entries[0]
    assert first["route"] == "/v1/check/{jti}" and first["status"] == 200
    assert first["method"] == "GET" and first["level"] == "info"
    assert {"ts", "logger", "msg", "duration_ms", "pid"} <= set(first)


async def test_access_log_can_be_turned_off(make_client: MakeClient,
                                            captured: pytest.LogCaptureFixture) -> None:
    client = await make_client(REVOKER_ACCESS_LOG="false")
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert not [r for r in captured.records if r.name == "revoker.access"]


#: What each request below is answered, as (method, route label, status): the hot routes'
#: 2xx answers (by the lane and, percent-encoded, by the router), their refusals, and others.
HOT_OK = [("GET", "/v1/check/{jti}", 200), ("GET", "/v1/check/{jti}", 200),
          ("POST", "/v1/check", 200), ("GET", "/v1/authz", 200),
          ("GET", "/v1/authz/{tail}", 200)]
HOT_REFUSED = [("GET", "/v1/authz/{tail}", 401), ("GET", "/v1/check/{jti}", 401)]
COLD = [("POST", "/v1/revocations", 201), ("POST", "/v1/check/batch", 200),
        ("GET", "/healthz", 200)]


async def answer_mix(client: Any) -> list[tuple[str, str, int]]:
    """The requests of HOT_OK, HOT_REFUSED and COLD; returns what each was answered, in
    the order of those lists (the revocation the refused authz needs is sent first)."""
    live, revoked = make_token("jti-live"), make_token("jti-revoked")
    gateway = {"X-Revoker-Key": CHECK_KEY}

    async def answer(method: str, path: str, label: str, **kwargs: Any
                     ) -> tuple[str, str, int]:
        resp = await client.request(method, path, **kwargs)
        await resp.read()
        return method, label, resp.status

    revocation = await answer("POST", "/v1/revocations", "/v1/revocations",
                              json={"token": revoked}, headers=auth(REVOKE_KEY))
    hot_ok = [
        await answer("GET", "/v1/check/abc", "/v1/check/{jti}", headers=auth(CHECK_KEY)),
        await answer("GET", "/v1/check/ab%63", "/v1/check/{jti}", headers=auth(CHECK_KEY)),
        await answer("POST", "/v1/check", "/v1/check", json={"claims": {"jti": "abc"}},
                     headers=auth(CHECK_KEY)),
        await answer("GET", "/v1/authz", "/v1/authz",
                     headers={**gateway, "Authorization": f"Bearer {live}"}),
        await answer("GET", "/v1/authz/orders/7", "/v1/authz/{tail}",
                     headers={**gateway, "Authorization": f"Bearer {live}"})]
    hot_refused = [
        await answer("GET", "/v1/authz/orders/7", "/v1/authz/{tail}",
                     headers={**gateway, "Authorization": f"Bearer {revoked}"}),
        await answer("GET", "/v1/check/abc", "/v1/check/{jti}")]
    cold = [revocation,
            await answer("POST", "/v1/check/batch", "/v1/check/batch",
                         json={"items": [{"jti": "abc"}]}, headers=auth(CHECK_KEY)),
            await answer("GET", "/healthz", "/healthz")]
    return hot_ok + hot_refused + cold


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "router"])
@pytest.mark.parametrize(("setting", "expected"), [
    ("skip-hot-2xx", HOT_REFUSED + COLD),
    ("all", HOT_OK + HOT_REFUSED + COLD),
    ("true", HOT_OK + HOT_REFUSED + COLD),
    ("off", []),
    ("false", []),
])
async def test_which_requests_get_an_access_line(
        make_client: MakeClient, captured: pytest.LogCaptureFixture, setting: str,
        expected: list[tuple[str, str, int]], lane: bool) -> None:
    client = await make_client(lane=lane, REVOKER_ACCESS_LOG=setting,
                               REVOKER_JWT_ALGORITHMS="HS256", REVOKER_JWT_SECRET=JWT_SECRET)
    answered = await answer_mix(client)
    assert answered == HOT_OK + HOT_REFUSED + COLD  # the mix is what the lists say
    access = [r for r in captured.records if r.name == "revoker.access"]
    logged = [(r.__dict__["method"], r.__dict__["route"], r.__dict__["status"])
              for r in access]
    assert sorted(logged) == sorted(expected)
    # the lines name route templates, never the token (tests/security covers the masking)
    lines = [JsonFormatter().format(r) for r in access] + [r.getMessage() for r in access]
    assert not [line for line in lines if "eyJ" in line or "Bearer" in line]


@contextlib.contextmanager
def configured(fmt: str) -> Iterator[io.StringIO]:
    """``logs.configure`` writing to a string; the root logger is restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    with contextlib.redirect_stderr(stream):  # the handler takes sys.stderr when made
        logs.configure(fmt=fmt, level="INFO")
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_configure_json_writes_one_object_per_line() -> None:
    with configured("json") as stream:
        token = REQUEST_ID.set("req-1")
        logging.getLogger("revoker.test").info("hello %s", "world", extra={"route": "/x"})
        REQUEST_ID.reset(token)
        logging.getLogger("revoker.test").debug("below the level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == "hello world" and entry["request_id"] == "req-1"
    assert entry["route"] == "/x" and entry["logger"] == "revoker.test"
    assert entry["ts"].endswith("Z")


def test_configure_text_is_readable() -> None:
    with configured("text") as stream:
        logging.getLogger("revoker.test").warning("plain words")
    line = stream.getvalue().strip()
    assert "WARNING" in line and "revoker.test: plain words" in line
    assert not line.startswith("{")


# -- redaction: defence in depth behind the connection guard -----------------------------

ADMIN_LIKE = "rvk_redaction_admin_key_Zq81LmN4vT0aP7cE"
PLAIN_KEY = "a-configured-key-without-the-prefix-31337"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_configured_handlers_mask_credentials_from_any_logger(fmt: str) -> None:
    """What aiohttp's parser used to log: the raw header line inside the exception text."""
    token = make_token("jti-redaction")
    lines = [f"Authorization: Bearer {token}", f"X-Revoker-Key: {PLAIN_KEY}",
             f"Authorization: Bearer {ADMIN_LIKE}"]
    with configured(fmt) as stream:
        server_log = logging.getLogger("aiohttp.server")
        for line in lines:
            try:
                raise ValueError(f"Invalid header value char:\n\n  b'{line}\\x00'\n  ^")
            except ValueError:
                server_log.exception("Error handling request from %s", "127.0.0.1")
            logging.getLogger("revoker.test").warning("echo %s", line,
                                                      extra={"header": line})
        logging.getLogger("aiohttp.access").warning("token=%s key=%s", token, ADMIN_LIKE)
    output = stream.getvalue()
    for secret in (token, token.split(".")[1], token.split(".")[2], PLAIN_KEY, ADMIN_LIKE,
                   ADMIN_LIKE[8:24]):
        assert secret not in output
    assert "Bearer " not in output.replace("Bearer [redacted]", "")
    assert output.count("[redacted]") >= 2 * len(lines) + 2
    assert "Invalid header value char" in output, "the rest of the line is kept"


def test_redaction_leaves_ordinary_lines_alone() -> None:
    for line in ("POST /v1/revocations 201 1.2ms", "listening on http://127.0.0.1:8080",
                 "revoked jti abc-123 (reason: stolen)", "an eye on basics",
                 "basic checks passed"):
        assert logs.redact(line) is line or logs.redact(line) == line
    assert logs.redact("key rvk_abc_DEF-1 used") == "key [redacted] used"
    assert logs.redact("Authorization: Basic dXNlcjpwYXNz") == "Authorization: [redacted]"
    assert logs.redact("client sent basic dXNlcjpwYXNz") == "client sent basic [redacted]"
    assert logs.redact("sent Bearer abc.def;") == "sent Bearer [redacted];"
    assert logs.redact("x eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln y") == "x [redacted] y"
