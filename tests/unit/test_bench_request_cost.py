"""How bench/request_cost.py sends requests: a numbered request (the revoke row) names a
new value on every send with its ``Content-Length`` still true, so that each counted
revoke stores a new record instead of merging into the last one; any 2xx is an answer,
anything else stops the count."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest

from bench.request_cost import SEQUENCE, send


def _serve(listener: socket.socket, status: bytes, seen: list[bytes]) -> None:
    """Answer each request on one connection with ``status``, keeping each whole request
    (its head and ``Content-Length`` bytes of body)."""
    conn, _ = listener.accept()
    with conn:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            found = re.search(rb"(?im)^content-length: *(\d+)", head)
            length = int(found.group(1)) if found else 0
            while len(rest) < length:
                rest += conn.recv(65536)
            seen.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, list[bytes]]]:
    status: bytes = getattr(request, "param", b"201 Created")
    seen: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=_serve, args=(listener, status, seen), daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname()[:2], timeout=10) as sock:
            yield sock, seen
        thread.join(timeout=10)


def test_a_numbered_request_names_a_new_value_each_time(
        server: tuple[socket.socket, list[bytes]]) -> None:
    sock, seen = server
    body = b'{"value":"rc-%s"}' % SEQUENCE
    request = b"POST /v1/revocations HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    send(sock, request, 3)  # each answer comes after the server kept the request
    values = [re.search(rb'"rc-(\d{12})"', item) for item in seen]
    assert all(values), seen
    numbers = [int(v.group(1)) for v in values if v]
    assert len(set(numbers)) == 3 and numbers == sorted(numbers)
    assert all(SEQUENCE not in item for item in seen)


def test_a_plain_request_is_sent_as_is(server: tuple[socket.socket, list[bytes]]) -> None:
    sock, seen = server
    request = b"GET /v1/check/abc HTTP/1.1\r\n\r\n"
    send(sock, request, 2)
    assert seen == [request, request]


@pytest.mark.parametrize("server", [b"401 Unauthorized"], indirect=True)
def test_an_answer_other_than_2xx_stops_the_count(
        server: tuple[socket.socket, list[bytes]]) -> None:
    sock, _ = server
    with pytest.raises(RuntimeError, match="401"):
        send(sock, b"GET / HTTP/1.1\r\n\r\n", 1)
