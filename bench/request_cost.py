#!/usr/bin/env python
"""Instructions per whole request, through a real socket: revoker beside aiohttp's hello.

    .venv/bin/python bench/request_cost.py                       # every row (~6 min)
    .venv/bin/python bench/request_cost.py --rows check --modes mirror --cycles 5

Needs ``valgrind`` and ``redis-server`` (Debian: ``apt-get install -y valgrind
redis-server``). Not part of the test suite.

``bench/run.py`` times servers under ``wrk`` on a shared machine, where the ratio to hello
moves by ±0.1 from one round to the next; ``bench/lane_cost.py`` counts the fast lane's
own work, without the socket, the HTTP parser, the transport guard or the answer's bytes.
This script counts everything a serving process does for one request (user space: the
kernel's share is not counted), for revoker and for the hello baseline
(``bench/baselines.py``) in the same run, so that their ratio is the part of "x hello"
that the code decides.

Each server runs under ``valgrind --tool=callgrind`` with instrumentation off: one
process (``revoker serve`` with one worker, its mirror's keeper in-process), its own Redis
on a free port. After a warm-up, each cycle counts the process while idle for
``--idle`` seconds (its timers: the metrics' flush, the keeper's heartbeat), then while
it answers ``--requests`` requests sent one at a time on one keep-alive connection; the
idle rate times the requests' wall time is subtracted, as valgrind stretches wall time by
as much as the machine is busy. The median over cycles is reported, with the range.

One request at a time is a gateway's quietest case: in strict mode each check is then a
Redis round trip of its own, where under load the checks of one turn of the event loop
share one (``bench/run.py`` measures that). Rows: ``check``, ``GET /v1/check/{jti}``, one
repeated jti (hello answers the same path); ``authz``, ``/v1/authz`` with one repeated
RS256 token; ``revoke``, ``POST /v1/revocations`` of a new jti each time (a stored record,
its event, and in mirror mode the keeper's work on that event). One key, with the
``revoke`` scope, authenticates every row. Results go to bench/results/request-cost-*.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.callgrind import control, require_tools  # noqa: E402

ROWS = ("check", "authz", "revoke")
#: Rows whose requests ``bench/where.py`` can send with plain ``wrk`` (no body, no change).
REPEATED_ROWS = ("check", "authz")
#: In a request, replaced on every send by the next number (as many digits, so that a
#: ``Content-Length`` stays true): a revoke then names a new jti each time.
SEQUENCE = b"#" * 12
_sequence = itertools.count(1)
MODES = ("mirror", "strict")
WARM_UP = 300
READY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Server:
    """A server to count: ``{port}`` in its command or environment is the port it takes."""

    name: str
    command: list[str]
    env: dict[str, str]
    request: bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send(sock: socket.socket, request: bytes, count: int) -> None:
    """``count`` requests, each sent once the answer to the one before is read (any 2xx:
    a revoke answers 201)."""
    numbered = SEQUENCE in request
    for _ in range(count):
        sock.sendall(request.replace(SEQUENCE, b"%012d" % next(_sequence)) if numbered
                     else request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 2"):
            status = head.partition(b"\r\n")[0].decode(errors="replace")
            raise RuntimeError(f"answered {status!r}")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        left = int(length.group(1)) if length else 0
        while len(body) < left:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            body += chunk


def connect(port: int, proc: subprocess.Popen[bytes], request: bytes) -> socket.socket:
    """A keep-alive connection once the server answers 200."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server ended early ({proc.returncode})")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            send(sock, request, 1)
            return sock
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def running(server: Server, port: int, log: Path, *, wrapper: Sequence[str] = (),
            stop_timeout_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """``server`` on ``port`` (its ``{port}`` filled in), under ``wrapper`` (valgrind, say),
    its stderr to ``log``: stopped with SIGTERM after the block, killed when the block fails
    or the server does not stop in time."""
    command = [*wrapper, *(part.replace("{port}", str(port)) for part in server.command)]
    env = {name: value.replace("{port}", str(port)) for name, value in server.env.items()}
    with log.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=stop_timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def last_part(out: Path) -> int:
    """The instructions of the latest dump (each dump is one part, counted from zero)."""
    parts = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    found = re.search(r"^totals: (\d+)", parts[-1].read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no totals in {parts[-1]}")
    return int(found.group(1))


def measure(server: Server, cycles: int, requests: int, idle_s: float) -> list[float]:
    """Instructions per request in each cycle, the idle rate's share taken out."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="revoker-request-cost-") as tmp:
        out = Path(tmp) / "callgrind.out"
        log = Path(tmp) / "valgrind.log"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}"]
        with running(server, port, log, wrapper=valgrind, stop_timeout_s=300) as proc:
            sock = connect(port, proc, server.request)
            send(sock, server.request, WARM_UP)
            per_request: list[float] = []
            control(proc.pid, "-i", "on")
            for _ in range(cycles):
                control(proc.pid, "-z")  # zero: the part below starts here
                started = time.monotonic()
                time.sleep(idle_s)
                control(proc.pid, "-d")
                idle_rate = last_part(out) / (time.monotonic() - started)
                started = time.monotonic()
                send(sock, server.request, requests)
                control(proc.pid, "-d")
                elapsed = time.monotonic() - started
                per_request.append((last_part(out) - idle_rate * elapsed) / requests)
            control(proc.pid, "-i", "off")
            sock.close()
    return per_request


def servers(modes: list[str], rows: list[str], redis_url: str, tmp: Path) -> list[Server]:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from revoker import apikeys

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = tmp / "keys"
    keys.mkdir()
    (keys / "rs256.pem").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    token = jwt.encode({"sub": "user-1", "jti": str(uuid.UUID(int=7)), "iat": now,
                        "exp": now + 86400}, private, algorithm="RS256",
                       headers={"kid": "rs256"})
    key = apikeys.generate()
    jti = uuid.UUID(int=8)
    check = (f"GET /v1/check/{jti} HTTP/1.1\r\nHost: revoker\r\n"
             f"X-Revoker-Key: {key}\r\n\r\n").encode()
    authz = (f"GET /v1/authz HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: {key}\r\n"
             f"Authorization: Bearer {token}\r\nX-Original-URI: /orders/7\r\n"
             f"X-Original-Method: GET\r\n\r\n").encode()
    body = b'{"kind":"jti","value":"rc-%s","ttl":3600}' % SEQUENCE
    revoke = (f"POST /v1/revocations HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: {key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
              ).encode() + body
    requests = {"check": check, "authz": authz, "revoke": revoke}
    python = sys.executable
    found = [Server("hello", [python, str(HERE / "baselines.py"), "hello", "{port}"],
                    dict(os.environ), check)]
    for mode in modes:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "REVOKER_STORE_URL": redis_url,
               "REVOKER_PORT": "{port}", "REVOKER_KEY_PREFIX": f"cost-{mode}:",
               "REVOKER_CHECK_MODE": mode, "REVOKER_WORKERS": "1",
               "REVOKER_LOG_LEVEL": "WARNING",
               # valgrind stretches wall time many times over: the default bound on a
               # store call (0.25 s) would cut a revoke's write short (a 503)
               "REVOKER_STORE_TIMEOUT": "30",
               "REVOKER_API_KEYS": apikeys.config_line("gateway", ["revoke"], key),
               "REVOKER_JWT_PUBLIC_KEYS": str(keys), "REVOKER_JWT_ALGORITHMS": "RS256"}
        for row in rows:
            found.append(Server(f"{mode} {row}", [python, "-m", "revoker", "serve"], env,
                                requests[row]))
    return found


def add_choices(parser: argparse.ArgumentParser, rows: Sequence[str] = ROWS) -> None:
    """``--modes`` and ``--rows``: which of ``servers``' revoker servers to measure."""
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rows", default=",".join(rows))


def chosen(parser: argparse.ArgumentParser, args: argparse.Namespace,
           rows_known: Sequence[str] = ROWS) -> tuple[list[str], list[str]]:
    """The modes and rows asked for; stops with a usage error on an unknown one."""
    modes, rows = args.modes.split(","), args.rows.split(",")
    for name, given, known in (("mode", modes, MODES), ("row", rows, rows_known)):
        for value in given:
            if value not in known:
                parser.error(f"unknown {name} {value!r}; {name}s: {', '.join(known)}")
    return modes, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_choices(parser)
    parser.add_argument("--cycles", type=int, default=3, help="counts per server (median)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per cycle")
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds of idle counting per cycle")
    args = parser.parse_args()
    modes, rows = chosen(parser, args)
    require_tools(parser)
    from bench.run import write_results
    from tests.redis_proc import RedisProcess

    started = time.monotonic()
    redis = RedisProcess().start()
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="revoker-request-cost-keys-") as tmp:
            hello: float | None = None
            for server in servers(modes, rows, redis.url, Path(tmp)):
                counts = measure(server, args.cycles, args.requests, args.idle)
                median = statistics.median(counts)
                hello = median if hello is None else hello
                results.append({"row": server.name, "instructions": median,
                                "cycles": counts, "x_hello": hello / median})
                print(f"{server.name:<13} {median:>9,.0f} instructions per request "
                      f"({min(counts):,.0f}-{max(counts):,.0f})  x hello {hello / median:.2f}",
                      flush=True)
    finally:
        redis.stop()
    write_results("request-cost", {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cycles": args.cycles,
        "requests": args.requests, "idle_s": args.idle, "results": results},
        time.monotonic() - started)


if __name__ == "__main__":
    main()
