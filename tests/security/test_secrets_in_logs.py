"""No credential reaches a log line or an error body, whatever the request's framing.

A header line that carries a credential and also a stray control byte (NUL, \\x01, DEL, a
bare CR from a key read out of a CRLF file), an over-long line or an over-long header block
used to reach aiohttp's HTTP parser, which logged the raw line at error level and echoed it
in its 400 body. Each case here is sent as raw bytes to a real ``revoker serve`` (text and
JSON logs, one and two workers); every response body and the whole captured log are then
searched for every key and token used, and for a distinctive 16-character fragment of each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revoker import apikeys
from revoker.web import transport
from tests.redis_proc import RedisProcess
from tests.serve_proc import ServeProcess, raw_exchange, status_of

pytestmark = [pytest.mark.security, pytest.mark.slow, pytest.mark.redis]

ADMIN_KEY = "rvk_secrets_admin_7Qx2Lm9Vb4Nc8Rt1Zy6Kp3Wd"
CHECK_KEY = "rvk_secrets_check_H5sJ0gUe2Aq7Xo4Bi9Ff1Mv6"
WRONG_KEY = "rvk_secrets_wrong_Pz8Tn3Ya6Gc1Ek5Lr0Ju7Ds2"
JWT_SECRET = "secrets-in-logs-hs256-signing-secret-4f9c2a7e1b"
PREFIX = "secrets-in-logs:"
#: Past the 20 KiB line bound and the 64 KiB header-block bound of revoker.web.transport.
LONG_LINE_PAD = b"A" * 25_000
BLOCK_PAD_LINES = 90
BLOCK_PAD_LINE = b"X-Pad-%02d: " + b"p" * 1000


def user_token(jti: str, *, secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"jti": jti, "sub": "alice@example.com", "iat": now, "exp": now + 600},
                      secret, algorithm="HS256")


JWT = user_token("secrets-in-logs-jti-1")
FORGED_JWT = user_token("secrets-in-logs-jti-2", secret="another-secret-of-32-bytes-or-more-1234")


def secrets_and_fragments() -> list[str]:
    """Every credential, and a 16-character fragment of each, as the log must never hold."""
    whole = [ADMIN_KEY, CHECK_KEY, WRONG_KEY, JWT_SECRET, JWT, FORGED_JWT]
    found = list(whole)
    for secret in whole:
        found.append(secret[len(secret) // 2 - 8:len(secret) // 2 + 8])
    for token in (JWT, FORGED_JWT):
        _, payload, signature = token.split(".")
        found += [payload, signature, signature[:16], payload[-16:]]
    return found


#: (name, path, header line carrying the credential)
CREDENTIALS: list[tuple[str, bytes, bytes]] = [
    ("user jwt", b"/v1/authz", b"Authorization: Bearer " + JWT.encode()),
    ("admin key", b"/v1/revocations", b"Authorization: Bearer " + ADMIN_KEY.encode()),
    ("check key", b"/v1/check/abc", b"X-Revoker-Key: " + CHECK_KEY.encode()),
]


def _head(path: bytes, *lines: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: revoker\r\n" + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n"


def _block_pad() -> list[bytes]:
    return [BLOCK_PAD_LINE % i for i in range(BLOCK_PAD_LINES)]


#: (name, request bytes from (path, credential line))
MALFORMED: list[tuple[str, Callable[[bytes, bytes], bytes]]] = [
    ("NUL", lambda path, line: _head(path, line + b"\x00")),
    ("\\x01", lambda path, line: _head(path, line + b"\x01")),
    ("DEL", lambda path, line: _head(path, line + b"\x7f")),
    ("bare CR", lambda path, line: _head(path, line + b"\r")),
    ("CR inside", lambda path, line: _head(path, line + b"\rX-Other: 1")),
    ("over-long line", lambda path, line: _head(path, line + LONG_LINE_PAD)),
    ("over-long block", lambda path, line: _head(path, line, *_block_pad())),
    ("bare LF", lambda path, line: _head(path, b"X-First: 1\n" + line)),
    ("space in name", lambda path, line: _head(path, b"X " + line)),
    ("no colon", lambda path, line: _head(path, line.replace(b":", b"", 1))),
    ("folded", lambda path, line: _head(path, b"X-Fold: a", b" " + line)),
]


def _bad_credentials_with_valid_framing() -> list[tuple[bytes, int]]:
    body = json.dumps({"kind": "jti", "value": "nothing", "ttl": 60}).encode()
    return [
        (b"POST /v1/revocations HTTP/1.1\r\nHost: revoker\r\nAuthorization: Bearer "
         + WRONG_KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body, 401),
        (_head(b"/v1/check/abc", b"X-Revoker-Key: " + WRONG_KEY.encode(),
               b"Connection: close"), 401),
        (_head(b"/v1/authz", b"Authorization: Bearer " + FORGED_JWT.encode(),
               b"X-Revoker-Key: " + CHECK_KEY.encode(), b"Connection: close"), 401),
        (_head(b"/v1/authz", b"Authorization: Bearer " + JWT.encode()[:-6] + b"broken",
               b"X-Revoker-Key: " + CHECK_KEY.encode(), b"Connection: close"), 401),
        (b"POST /v1/logout HTTP/1.1\r\nHost: revoker\r\nAuthorization: Bearer "
         + FORGED_JWT.encode() + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 401),
    ]


@pytest.fixture(params=[("text", 1), ("json", 1), ("text", 2), ("json", 2)],
                ids=["text-1", "json-1", "text-2", "json-2"])
def server(request: pytest.FixtureRequest, redis_server: RedisProcess) -> Iterator[ServeProcess]:
    fmt, workers = request.param
    keyring = ",".join([apikeys.config_line("ops", ["admin"], ADMIN_KEY),
                        apikeys.config_line("gw", ["check"], CHECK_KEY)])
    proc = ServeProcess({
        "REVOKER_STORE_URL": redis_server.url, "REVOKER_KEY_PREFIX": PREFIX,
        "REVOKER_API_KEYS": keyring, "REVOKER_WORKERS": str(workers),
        "REVOKER_LOG_FORMAT": fmt, "REVOKER_LOG_LEVEL": "DEBUG", "REVOKER_ACCESS_LOG": "true",
        "REVOKER_JWT_ALGORITHMS": "HS256", "REVOKER_JWT_SECRET": JWT_SECRET,
    }, log_to_file=True)
    try:
        yield proc.start()
    finally:
        proc.stop()
        proc.remove_log()


def _leaks(text: str) -> list[str]:
    return [secret for secret in secrets_and_fragments() if secret in text]


def test_no_credential_reaches_the_log_or_an_error_body(server: ServeProcess) -> None:
    problems = []
    for cred_name, path, line in CREDENTIALS:
        for case, build in MALFORMED:
            answer = raw_exchange(server.port, build(path, line))
            head, _, body = answer.partition(b"\r\n\r\n")
            text = answer.decode("latin-1")
            if status_of(answer) != 400 or b"application/problem+json" not in head:
                problems.append(f"{cred_name}/{case}: not a problem+json 400: {text[:60]!r}")
            elif json.loads(body)["status"] != 400:
                problems.append(f"{cred_name}/{case}: body {body[:60]!r}")
            if leaks := _leaks(text):
                problems.append(f"{cred_name}/{case}: the answer echoes {leaks[0][:12]}...")
    for request, status in _bad_credentials_with_valid_framing():
        answer = raw_exchange(server.port, request)
        if status_of(answer) != status:
            problems.append(f"valid framing: {status_of(answer)} instead of {status}")
        if leaks := _leaks(answer.decode("latin-1")):
            problems.append(f"valid framing: the answer echoes {leaks[0][:12]}...")
    _, log = server.stop()
    assert not problems, problems
    assert "stopped" in log, "the log was captured to the end"
    assert log.count("refused a malformed request") >= len(CREDENTIALS) * len(MALFORMED), \
        "every refusal is logged (without its bytes)"
    assert '"revoker.access"' in log or "revoker.access" in log, "the access log was on"
    leaking = [line for line in log.splitlines() if _leaks(line)]
    assert not leaking, f"secret material in the log: {leaking[0][:200]}"
    assert "Bearer " not in log, "no Authorization header is ever logged"


# -- heads the guard lets through never meet a parser error --------------------------------

#: Unusual but well-framed heads the guard passes on: aiohttp must parse every one (an
#: aiohttp parser error would quote the request). Each carries the admin key.
PASSED: list[bytes] = [
    b"GET /v1/check/%zz HTTP/1.1",
    b"GET //evil.example/x HTTP/1.1",
    b"GET /v1/authz/a|b{c}^`[]\\ HTTP/1.1",
    b"GET /v1/authz?x=%%%%&y=%00 HTTP/1.1",
    b"GET /v1/authz#fragment HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET /healthz HTTP/1.0",
    b"DELETE /v1/revocations/jti/%2e%2e HTTP/1.1",
]
EXTRA_FIELDS: list[bytes] = [
    b"X-Latin: \xff\xfe\x80 caf\xc3\xa9",
    b"X-Empty:",
    b"X-Blank: \t \t",
    b"Content-Length: 000",
    b"Connection: Upgrade\r\nUpgrade: websocket",
    b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQ",
    b"TE: trailers",
    b"Cookie: a=\xc3",
    b"X-Long: " + b"a" * (17 * 1024),
    b"".join(b"X-Many-%d: 1\r\n" % i for i in range(90)).rstrip(b"\r\n"),
]
#: Well-framed heads the guard refuses itself, because aiohttp would refuse them with a
#: quoting 400 or revoker does not take such a body: (request line, fields, status).
REFUSED: list[tuple[bytes, list[bytes], int]] = [
    (b"GET * HTTP/1.1", [], 400),
    (b"GET /healthz HTTP/1.1", [b"Host: again"], 400),
    (b"GET /healthz HTTP/1.1", [b"Content-Length: 1", b"Content-Length: 1"], 400),
    (b"GET /healthz HTTP/1.1", [b"User-Agent: a", b"user-agent: b"], 400),
    (b"GET /healthz HTTP/1.1", [b"Content-Length: -1"], 400),
    (b"GET /healthz HTTP/1.1", [b"Content-Length: 1e3"], 400),
    (b"POST /v1/revocations HTTP/1.1", [b"Transfer-Encoding: chunked"], 411),
    (b"POST /v1/revocations HTTP/1.1", [b"Content-Encoding: gzip", b"Content-Length: 3"], 415),
    (b"TRACE / HTTP/1.1", [], 501),
    (b"GET /healthz HTTP/2.0", [], 400),
    (b"GET http://revoker/healthz HTTP/1.1", [], 400),
]
KEY_LINE = b"Authorization: Bearer " + ADMIN_KEY.encode()


def _content_type(answer: bytes) -> bytes:
    head = answer.partition(b"\r\n\r\n")[0].lower()
    return head.partition(b"\r\ncontent-type:")[2].partition(b"\r\n")[0].strip()


@pytest.fixture
def small_server(redis_server: RedisProcess) -> Iterator[ServeProcess]:
    proc = ServeProcess({
        "REVOKER_STORE_URL": redis_server.url, "REVOKER_KEY_PREFIX": PREFIX,
        "REVOKER_API_KEYS": apikeys.config_line("ops", ["admin"], ADMIN_KEY),
        "REVOKER_LOG_LEVEL": "DEBUG", "REVOKER_HEADER_TIMEOUT": "0.5",
        "REVOKER_BODY_TIMEOUT": "0.5", "REVOKER_KEEPALIVE_TIMEOUT": "0.2",
    }, log_to_file=True)
    try:
        yield proc.start()
    finally:
        proc.stop()
        proc.remove_log()


def test_unusual_heads_are_parsed_or_refused_without_a_parser_error(
        small_server: ServeProcess) -> None:
    problems = []
    sent: list[tuple[bytes, list[bytes], int | None]] = [
        (line, [b"Host: revoker", KEY_LINE], None) for line in PASSED]
    sent += [(PASSED[0], [b"Host: revoker", KEY_LINE, field], None) for field in EXTRA_FIELDS]
    sent += [(line, [KEY_LINE, *fields] + ([b"Host: revoker"] if b"1.1" in line else []),
              status) for line, fields, status in REFUSED]
    sent.append((b"GET /healthz HTTP/1.1", [KEY_LINE], 400))  # HTTP/1.1 needs a Host
    for line, fields, status in sent:
        request = line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n"
        answer = raw_exchange(small_server.port, request)
        content_type = _content_type(answer)
        if content_type not in (b"application/json", b"application/problem+json"):
            problems.append(f"{line[:30]!r} {fields[-1][:30]!r}: {answer[:40]!r}")
        elif status is not None and status_of(answer) != status:
            problems.append(f"{line[:30]!r} {fields[-1][:30]!r}: {status_of(answer)}")
        if _leaks(answer.decode("latin-1")):
            problems.append(f"{line[:30]!r}: the answer echoes the key")
    _, log = small_server.stop()
    assert not problems, problems
    assert "aiohttp.server" not in log, "aiohttp's parser never refused anything"
    assert not [row for row in log.splitlines() if _leaks(row)]


# -- fuzzing: whatever the bytes, the answer and the log hold no credential --------------

_ODD_BYTES = st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\r", b"\n", b"\t", b" ", b":",
                              b"\xff", b"\x1b", b"%00", b"a"])
_LINE_ENDS = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r", b"\r\r\n"])


def _fuzzed(base: bytes) -> st.SearchStrategy[bytes]:
    """``base`` with a few odd bytes inserted at random places."""
    return st.lists(st.tuples(st.integers(0, len(base)), _ODD_BYTES), max_size=3).map(
        lambda edits: _insert(base, edits))


def _insert(base: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    for position, odd in sorted(edits, reverse=True):
        base = base[:position] + odd + base[position:]
    return base


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    request_line = draw(_fuzzed(draw(st.sampled_from([
        b"GET /v1/check/abc HTTP/1.1", b"POST /v1/revocations HTTP/1.1",
        b"GET /v1/authz HTTP/1.1", b"OPTIONS * HTTP/1.0"]))))
    fields = draw(st.lists(_fuzzed(draw(st.sampled_from([
        b"Host: revoker", b"Content-Length: 2", b"Content-Type: application/json",
        b"Transfer-Encoding: chunked", b"X-Other: value"]))), max_size=3))
    secret_line = draw(_fuzzed(draw(st.sampled_from([line for _, _, line in CREDENTIALS]))))
    fields.insert(draw(st.integers(0, len(fields))), secret_line)
    ending = draw(_LINE_ENDS)
    return request_line + ending + b"".join(f + draw(_LINE_ENDS) for f in fields) + \
        b"\r\n{}"


def test_fuzzed_heads_never_leak_a_credential(small_server: ServeProcess) -> None:
    """Heads with odd bytes anywhere: every answer, and then the whole log, is clean."""
    @settings(max_examples=100, deadline=None, database=None)
    @given(head=heads())
    def send(head: bytes) -> None:
        answer = raw_exchange(small_server.port, head, timeout_s=3)
        assert not _leaks(answer.decode("latin-1")), answer[:300]
        assert _content_type(answer) in (b"", b"application/json",
                                         b"application/problem+json"), answer[:300]

    send()
    _, log = small_server.stop()
    assert "stopped" in log
    assert not [row for row in log.splitlines() if _leaks(row)]
    assert "aiohttp.server" not in log, "aiohttp's parser never refused anything"


def test_a_refusal_follows_the_answers_before_it(small_server: ServeProcess) -> None:
    """Pipelined after good requests, a malformed one is refused after their answers, in
    order, never in the middle of one."""
    good = b"GET /healthz HTTP/1.1\r\nHost: revoker\r\n\r\n"
    bad = b"GET /healthz HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: " + \
        CHECK_KEY.encode() + b"\x00\r\n\r\n"
    answer = raw_exchange(small_server.port, good + good + bad)
    statuses = [int(part[:3]) for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 200, 400], answer
    assert answer.endswith(b'"status":400,"detail":"a control character in the request line '
                           b'or a header line (only CRLF line endings are accepted)"}')
    assert CHECK_KEY.encode() not in answer


@pytest.mark.parametrize(("fields", "expected"), [
    ([b"Host: h"], 0),
    ([b"Host: h", b"Content-Length: 12"], 12),
    ([b"host: h", b"content-length:  7 "], 7),
    ([b"Host: h", b"Content-Encoding: identity", b"Content-Length: 3"], 3),
    ([b"Host: h", b"Transfer-Encoding: chunked"], 411),
    ([b"Host: h", b"Content-Length: 3", b"Transfer-Encoding: chunked"], 411),
    ([b"Host: h", b"Content-Encoding: gzip"], 415),
    ([b"Host: h", b"Content-Length: 3", b"content-length: 3"], 400),
    ([b"Host: h", b"Content-Length: +3"], 400),
    ([b"Host: h", b"Content-Length: 1234567890123456"], 400),
    ([b"Host: h", b"Host: h"], 400),
    ([b"Content-Length: 3"], 400),  # HTTP/1.1 without Host
])
def test_the_body_length_comes_from_one_clear_content_length(fields: list[bytes],
                                                             expected: int) -> None:
    """``expected``: the length, or the status of the refusal (411, 415, 400)."""
    head = b"POST /v1/check HTTP/1.1\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    if expected < 400:
        assert transport.body_length(head) == expected
        return
    with pytest.raises(transport.Refusal) as refused:
        transport.body_length(head)
    assert refused.value.status == expected
    assert not any(field.decode() in refused.value.detail for field in fields)


def test_an_http_1_0_body_is_never_read_as_a_request(small_server: ServeProcess) -> None:
    """The bytes of a body, even when they look like a request, are a body."""
    inner = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (b"POST /v1/check HTTP/1.0\r\nContent-Length: " + str(len(inner)).encode()
               + b"\r\n\r\n" + inner)
    answer = raw_exchange(small_server.port, request)
    assert answer.count(b"HTTP/1.") == 1 and status_of(answer) == 401
    assert transport.body_length(request[:request.index(b"\r\n\r\n") + 4]) == len(inner)
