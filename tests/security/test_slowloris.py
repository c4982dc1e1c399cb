"""Stalled clients are dropped, and a slowloris does not slow checks down.

Connections that trickle their headers, send half a request and stop, send a body slowly,
send nothing at all or sit idle between requests are each closed once their own timeout
(REVOKER_HEADER_TIMEOUT, REVOKER_BODY_TIMEOUT, REVOKER_KEEPALIVE_TIMEOUT) has passed, plus a
small margin; meanwhile checks on fresh connections keep answering promptly. Short timeouts
keep the suite fast; every wait polls against a deadline.
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from revoker import apikeys
from tests.serve_proc import ServeProcess, raw_exchange, status_of

pytestmark = [pytest.mark.security, pytest.mark.slow]

CHECK_KEY = "rvk_slowloris_check_key_0123456789abcdef"
#: Allowed lateness of a close past its timeout: the server's timer granularity, a loaded
#: machine, and this test's polling.
MARGIN_S = 1.5
PER_KIND = 100
HEAD = b"GET /v1/check/slow HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: " + \
    CHECK_KEY.encode() + b"\r\n\r\n"


def serve(**env: str) -> ServeProcess:
    return ServeProcess({"REVOKER_API_KEYS": apikeys.config_line("gw", ["check"], CHECK_KEY),
                         "REVOKER_ACCESS_LOG": "false", **env}, log_to_file=True)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ServeProcess]:
    env = getattr(request, "param", {})
    proc = serve(**{"REVOKER_HEADER_TIMEOUT": "1", "REVOKER_BODY_TIMEOUT": "1",
                    "REVOKER_KEEPALIVE_TIMEOUT": "1", **env})
    try:
        yield proc.start()
    finally:
        proc.stop()
        proc.remove_log()


def check(server: ServeProcess) -> int:
    req = urllib.request.Request(server.url + "/v1/check/abc",
                                 headers={"X-Revoker-Key": CHECK_KEY})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


@dataclass
class Stalled:
    """One stalling client: what it sends now, what it trickles, and when its clock starts."""

    sock: socket.socket
    kind: str
    trickle: bytes
    started: float
    closed_at: float | None = None
    sent: int = 0

    def open_for(self) -> float:
        """Seconds from its first byte to the server's close (infinite while open)."""
        return math.inf if self.closed_at is None else self.closed_at - self.started


@dataclass
class Slowloris:
    """Drives stalled clients from a thread: trickles a byte every ``interval_s`` and notes
    when the server closes each connection."""

    clients: list[Stalled] = field(default_factory=list)
    interval_s: float = 0.1
    stop: threading.Event = field(default_factory=threading.Event)

    def open(self, port: int, kind: str, first: bytes, trickle: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        if first:
            sock.send(first)
        self.clients.append(Stalled(sock, kind, trickle, time.monotonic()))

    def open_count(self) -> int:
        return sum(client.closed_at is None for client in self.clients)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for client in self.clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        next_trickle = time.monotonic()
        while not self.stop.is_set() and self.open_count():
            if time.monotonic() >= next_trickle:
                next_trickle += self.interval_s
                for client in self.clients:
                    if client.closed_at is None and client.sent < len(client.trickle):
                        with contextlib.suppress(OSError):  # seen as closed by the read
                            client.sent += client.sock.send(
                                client.trickle[client.sent:client.sent + 1])
            for key, _ in selector.select(timeout=0.02):
                client = key.data
                try:
                    data = client.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    client.closed_at = time.monotonic()
                    selector.unregister(client.sock)
        selector.close()

    def close(self) -> None:
        for client in self.clients:
            client.sock.close()


def test_stalled_clients_are_dropped_and_checks_stay_prompt() -> None:
    timeout_s = 3.0
    proc = serve(REVOKER_HEADER_TIMEOUT=str(timeout_s), REVOKER_BODY_TIMEOUT=str(timeout_s),
                 REVOKER_KEEPALIVE_TIMEOUT="30", REVOKER_ACCESS_LOG="true",
                 REVOKER_LOG_LEVEL="DEBUG").start()
    attack = Slowloris()
    try:
        body_head = (b"POST /v1/check HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: "
                     + CHECK_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        for _ in range(PER_KIND):
            attack.open(proc.port, "trickled headers", HEAD[:5], HEAD[5:])
            attack.open(proc.port, "half request", HEAD[:40], b"")
            attack.open(proc.port, "slow body", body_head + b'{"token": "', b"a" * 1000)
        driver = threading.Thread(target=attack.run, daemon=True)
        driver.start()

        latencies = []
        while time.monotonic() - attack.clients[-1].started < timeout_s - 1.0:
            started = time.monotonic()
            assert check(proc) == 200
            latencies.append(time.monotonic() - started)
        assert attack.open_count() == 3 * PER_KIND, "the checks ran while all were open"
        assert len(latencies) >= 10 and max(latencies) < 0.5, latencies

        driver.join(timeout_s + MARGIN_S + 5)
        assert not driver.is_alive(), f"{attack.open_count()} connections never closed"
        late = [(c.kind, round(c.open_for(), 2)) for c in attack.clients
                if c.open_for() > timeout_s + MARGIN_S]
        assert not late, late[:5]
        early = [(c.kind, round(c.open_for(), 2)) for c in attack.clients
                 if c.open_for() < timeout_s - 0.2]
        assert not early, early[:5]
        assert check(proc) == 200
        _, log = proc.stop()
        assert log.count(": header_timeout") == 2 * PER_KIND
        assert log.count(": body_timeout") == PER_KIND
        assert "Traceback" not in log and " ERROR " not in log, log[-2000:]
        assert log.count("POST /v1/check 408") == PER_KIND, "a body timeout is a 408"
    finally:
        attack.stop.set()
        attack.close()
        proc.stop()
        proc.remove_log()


def _closed_after(sock: socket.socket, started: float, limit_s: float) -> float:
    """Seconds from ``started`` until the server closed ``sock`` (reading and discarding
    any answer); fails past ``limit_s``."""
    sock.settimeout(0.05)
    while time.monotonic() - started < limit_s:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    raise AssertionError(f"still open after {limit_s}s")


def test_a_silent_connection_is_closed_after_the_header_timeout(
        server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        elapsed = _closed_after(sock, time.monotonic(), 1 + MARGIN_S)
    assert elapsed > 0.8


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
        server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for _ in range(2):  # the timeout restarts after every answer
            sock.sendall(HEAD)
            answer = b""
            while b'"revoked"' not in answer:
                answer += sock.recv(65536)
            assert status_of(answer) == 200
        elapsed = _closed_after(sock, time.monotonic(), 1 + MARGIN_S)
    assert elapsed > 0.8


def test_a_slow_but_timely_client_is_served(server: ServeProcess) -> None:
    """Timeouts bound the whole head and body, not each packet: a request that trickles in
    well within them is answered, and so are pipelined requests."""
    body = b'{"claims": {"jti": "abc"}}'
    request = (b"POST /v1/check HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: "
               + CHECK_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for piece in (request[:10], request[10:60], request[60:-5], request[-5:]):
            sock.sendall(piece)
            time.sleep(0.1)  # the scenario: a client that sends in pieces
        answer = sock.recv(65536)
        assert status_of(answer) == 200, answer[:200]
    pipelined = raw_exchange(server.port, HEAD + HEAD.replace(b"\r\n\r\n",
                                                              b"\r\nConnection: close\r\n\r\n"))
    assert pipelined.count(b"HTTP/1.1 200 OK") == 2


@pytest.mark.parametrize("framing", [
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
])
def test_a_request_body_without_content_length_is_refused(server: ServeProcess,
                                                          framing: bytes) -> None:
    request = (b"POST /v1/check HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: "
               + CHECK_KEY.encode() + b"\r\nContent-Type: application/json\r\n" + framing
               + b"\r\n5\r\nhello\r\n0\r\n\r\n")
    answer = raw_exchange(server.port, request)
    assert status_of(answer) == 411
    assert b"application/problem+json" in answer
