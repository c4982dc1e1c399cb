"""``revoker serve`` as real processes: several workers on one port, SIGTERM, HTTPS and mTLS.

Each test starts its own server (and, where it freezes Redis, its own Redis); logs go to a
file so that a long run can never block on a full pipe.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client.parser import text_string_to_metric_families

from revoker import apikeys
from tests.redis_proc import RedisProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ADMIN = "rvk_serve_test_admin_key_0123456789abcdef"
KEYS = apikeys.config_line("ops", ["admin"], ADMIN)
DEADLINE_S = 20.0


class Serve:
    """One ``revoker serve`` process (supervisor or single worker) with logs in a file."""

    def __init__(self, env: Mapping[str, str], *, scheme: str = "http",
                 context: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.scheme = scheme
        self.context = context
        self.log_path = Path(tempfile.mkstemp(prefix="revoker-serve-", suffix=".log")[1])
        self.env = {**os.environ, "REVOKER_HOST": "127.0.0.1", "REVOKER_PORT": str(self.port),
                    "REVOKER_API_KEYS": KEYS, **env}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Serve:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "revoker", "serve"],
                                         env=self.env, stdout=log, stderr=log)
        poll_until(lambda: self._answers(), what="revoker to answer /healthz",
                   alive=self.proc)
        return self

    def _answers(self) -> bool:
        try:
            return request(self, "/healthz")[0] == 200
        except OSError:
            return False

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DEADLINE_S)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def serving(env: Mapping[str, str], **kwargs: Any) -> Iterator[Serve]:
    server = Serve(env, **kwargs)
    try:
        yield server.start()
    finally:
        server.close()


def poll_until(condition: Callable[[], bool], *, what: str, timeout_s: float = DEADLINE_S,
               alive: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"process exited with {alive.returncode} waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def request(server: Serve, path: str, method: str = "GET", body: Any = None,
            timeout_s: float = 5.0) -> tuple[int, bytes]:
    """One request on a fresh connection (so SO_REUSEPORT may pick any worker)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=server.context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def scrape(server: Serve) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = request(server, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and set(labels.items()) <= set(sample_labels))


# -- which processes listen on a port, from /proc ---------------------------------------

def listeners(port: int) -> set[int]:
    """PIDs holding a LISTEN socket on ``port`` (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(pid))
    return pids


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


# -- several workers ------------------------------------------------------------------------

LATENCY = "revoker_http_request_duration_seconds"


def metrics_directory(workers: set[int]) -> Path:
    directories = {environ_of(pid)["PROMETHEUS_MULTIPROC_DIR"] for pid in workers}
    assert len(directories) == 1
    return Path(directories.pop())


def snapshot_counts(directory: Path, route: str = "/v1/check/{jti}") -> dict[int, int]:
    """Observations of ``route`` in each worker's histogram snapshot file, by worker pid."""
    counts: dict[int, int] = {}
    for path in directory.glob("revoker-histograms-*.json"):
        document = json.loads(path.read_bytes())
        series = document["histograms"].get(LATENCY, {"series": []})["series"]
        counts[document["pid"]] = sum(sum(buckets) for labels, buckets, _ in series
                                      if labels == [route])
    return counts


@contextlib.contextmanager
def two_workers(redis: RedisProcess, prefix: str, **env: str) -> Iterator[tuple[Serve, set[int]]]:
    """``revoker serve`` with 2 workers, once both listen: (server, worker pids)."""
    full = {"REVOKER_STORE_URL": redis.url, "REVOKER_KEY_PREFIX": prefix,
            "REVOKER_WORKERS": "2", **env}
    with serving(full) as server:
        poll_until(lambda: len(listeners(server.port)) == 2, what="two listening workers")
        yield server, listeners(server.port)


def test_two_workers_share_the_port_and_metrics_cover_both(redis_server: RedisProcess,
                                                           prefix: str) -> None:
    # every check's access line (REVOKER_ACCESS_LOG=all) names the worker that answered it
    with two_workers(redis_server, prefix, REVOKER_LOG_FORMAT="json",
                     REVOKER_ACCESS_LOG="all") as (server, workers):
        assert server.proc is not None
        assert all(parent_of(pid) == server.proc.pid for pid in workers)
        metrics_dir = {environ_of(pid)["PROMETHEUS_MULTIPROC_DIR"] for pid in workers}
        assert len(metrics_dir) == 1
        directory = Path(metrics_dir.pop())
        assert directory.is_dir()

        for i in range(20):
            status, _ = request(server, "/v1/revocations", "POST",
                                {"kind": "jti", "value": f"load-{i}", "ttl": 600})
            assert status == 201
        for i in range(40):
            status, body = request(server, f"/v1/check/load-{i}")
            assert status == 200 and json.loads(body)["revoked"] is (i < 20)

        # Every request is counted exactly once, whichever worker answered it; a worker
        # adds its hot-path counts every second (revoker.metrics.flush), so poll.
        poll_until(lambda: total(scrape(server), "revoker_http_requests_total",
                                 route="/v1/check/{jti}", status="200") >= 40,
                   what="both workers' counts")
        samples = scrape(server)
        assert total(samples, "revoker_http_requests_total", route="/v1/check/{jti}",
                     status="200") == 40
        assert total(samples, "revoker_revocations_total", kind="jti", source="api") == 20
        assert total(samples, "revoker_checks_total", result="revoked") == 20
        assert total(samples, "revoker_checks_total", result="ok") == 20
        assert total(samples, "revoker_build_info") == 1
        access = [json.loads(line) for line in server.log.splitlines()
                  if line.startswith("{") and '"revoker.access"' in line]
        assert {entry["pid"] for entry in access if entry["route"] == "/v1/check/{jti}"} \
            == workers, "both workers answered requests"

        # Latency histograms: each worker publishes its own snapshot file there, and the
        # worker that answers a scrape adds the others' to its own.
        check = {"route": "/v1/check/{jti}"}
        poll_until(lambda: sum(snapshot_counts(directory).values()) == 40,
                   what="both workers' histogram snapshots")
        by_worker = snapshot_counts(directory)
        assert set(by_worker) == workers and all(by_worker.values()), by_worker
        samples = scrape(server)
        assert total(samples, f"{LATENCY}_count", **check) == 40
        assert total(samples, f"{LATENCY}_bucket", le="+Inf", **check) == 40
        assert 0 < total(samples, f"{LATENCY}_sum", **check) < 40 * DEADLINE_S
        assert total(samples, "revoker_store_operation_duration_seconds_count",
                     operation="upsert") == 20
        # A damaged snapshot (a disk error, a stray file) is skipped, never a failed scrape.
        (directory / "revoker-histograms-1-00000000.json").write_bytes(b'{"format": 1, "hi')
        for _ in range(4):  # whichever worker answers
            again = scrape(server)
            assert total(again, f"{LATENCY}_count", **check) == 40
        assert "skipping the histogram snapshot" in server.log
        assert ADMIN not in server.log and "Bearer" not in server.log
        assert server.terminate() == 0
    assert not directory.exists(), "the multiprocess metrics directory is removed at exit"


def test_a_dead_worker_is_replaced_and_counts_survive(redis_server: RedisProcess,
                                                     prefix: str) -> None:
    with two_workers(redis_server, prefix, REVOKER_ACCESS_LOG="false") as (server, before):
        for _ in range(10):
            assert request(server, "/healthz")[0] == 200
        # Counts reach the shared files within a second (a SIGKILL loses at most that).
        poll_until(lambda: total(scrape(server), "revoker_http_requests_total",
                                 route="/healthz") >= 10
                   and sum(snapshot_counts(metrics_directory(before), "/healthz").values())
                   >= 10, what="flushed counts")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        poll_until(lambda: len(listeners(server.port)) == 2 and victim not in
                   listeners(server.port), what="a replacement worker")
        samples = scrape(server)
        assert total(samples, "revoker_worker_restarts_total") == 1
        workers_now = listeners(server.port)
        # The dead worker's requests still count: counters are monotonic across restarts.
        assert total(samples, "revoker_http_requests_total", route="/healthz") >= 10
        # And its latencies: its snapshot file stays in the metrics directory.
        assert total(samples, f"{LATENCY}_count", route="/healthz") >= 10
        assert victim in snapshot_counts(metrics_directory(workers_now), "/healthz")
        assert "died with exit code -9; restarting" in server.log
        assert server.terminate() == 0


def test_workers_stop_when_the_supervisor_is_killed(redis_server: RedisProcess,
                                                    prefix: str) -> None:
    """Nobody would stop or replace orphaned workers, and a restarted service would share
    the port with them: a worker stops when its supervisor disappears."""
    with two_workers(redis_server, prefix, REVOKER_ACCESS_LOG="false") as (server, workers):
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait()
        poll_until(lambda: not any(running(pid) for pid in workers),
                   what="the orphaned workers to exit")
        assert not listeners(server.port)
        assert "is gone; stopping" in server.log


# -- graceful shutdown ------------------------------------------------------------------------

@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A Redis this test may freeze without disturbing any other test."""
    server = RedisProcess().start()
    yield server
    server.thaw()
    server.stop()


def _in_background(server: Serve, path: str, body: Any,
                   timeout_s: float) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(request(server, path, "POST", body, timeout_s=timeout_s))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_sigterm_stops_accepting_and_finishes_the_in_flight_request(
        own_redis: RedisProcess, prefix: str) -> None:
    with two_workers(own_redis, prefix, REVOKER_STORE_TIMEOUT="8",
                     REVOKER_SHUTDOWN_TIMEOUT="10") as (server, _):
        own_redis.freeze()  # the revoke below now waits on Redis: it is in flight
        thread, outcome = _in_background(server, "/v1/revocations",
                                         {"kind": "jti", "value": "in-flight", "ttl": 600}, 15)
        time.sleep(0.5)  # let the request reach a worker; nothing observable to poll here
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        poll_until(lambda: _refuses_connections(server.port), what="listeners to close")
        assert server.proc.poll() is None, "still draining the in-flight request"
        own_redis.thaw()
        thread.join(DEADLINE_S)
        assert outcome and outcome[0][0] == 201, outcome
        assert server.proc.wait(timeout=DEADLINE_S) == 0
        assert "all workers stopped" in server.log
    assert own_redis.cli("EXISTS", f"{prefix}jti:in-flight").strip() == b"1"


def test_shutdown_is_bounded_by_the_shutdown_timeout(own_redis: RedisProcess,
                                                    prefix: str) -> None:
    env = {"REVOKER_STORE_URL": own_redis.url, "REVOKER_KEY_PREFIX": prefix,
           "REVOKER_STORE_TIMEOUT": "30", "REVOKER_SHUTDOWN_TIMEOUT": "1"}
    with serving(env) as server:
        own_redis.freeze()
        thread, outcome = _in_background(server, "/v1/revocations",
                                         {"kind": "jti", "value": "stuck", "ttl": 600}, 25)
        time.sleep(0.5)  # let the request reach the worker
        started = time.monotonic()
        assert server.terminate() == 0
        assert time.monotonic() - started < 6, "gave up on the stuck request after ~1 s"
        thread.join(DEADLINE_S)
        assert outcome and isinstance(outcome[0], OSError), "the stuck request was cut off"


# -- HTTPS and client certificates ------------------------------------------------------------

class Pki:
    """A throw-away CA with a server certificate for 127.0.0.1 and client certificates."""

    def __init__(self, directory: Path, name: str = "revoker test CA") -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (self._builder(subject, self.key.public_key())
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_path = self._write(f"{name}-ca.pem", self.cert)

    def _builder(self, subject: x509.Name, public: Any) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                .public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(hours=1)))

    def _write(self, filename: str, cert: x509.Certificate) -> str:
        path = self.dir / filename
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def issue(self, common_name: str, *, server: bool) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (self._builder(subject, key.public_key())
                   .add_extension(x509.ExtendedKeyUsage([usage]), False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self._write(f"{common_name}.pem", cert)
        key_path = self.dir / f"{common_name}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, str(key_path)


def client_context(ca_path: str, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_path)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def test_https_with_a_server_certificate(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    cert, key = pki.issue("server", server=True)
    env = {"REVOKER_TLS_CERT": cert, "REVOKER_TLS_KEY": key}
    with serving(env, scheme="https", context=client_context(pki.ca_path)) as server:
        status, body = request(server, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        # Plain HTTP on the HTTPS port gets no HTTP answer.
        with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=3)
        assert server.terminate() == 0


def test_client_certificates_are_required_with_a_client_ca(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    rogue = Pki(tmp_path, "rogue CA")
    cert, key = pki.issue("server", server=True)
    good_client = pki.issue("gateway", server=False)
    rogue_client = rogue.issue("intruder", server=False)
    env = {"REVOKER_TLS_CERT": cert, "REVOKER_TLS_KEY": key,
           "REVOKER_TLS_CLIENT_CA": pki.ca_path}
    with serving(env, scheme="https",
                 context=client_context(pki.ca_path, good_client)) as server:
        assert request(server, "/healthz")[0] == 200
        for refused in (client_context(pki.ca_path), client_context(pki.ca_path, rogue_client)):
            server.context = refused
            with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
                request(server, "/healthz")
        assert server.terminate() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_stops_the_service_with_exit_code_2(redis_server: RedisProcess,
                                                         prefix: str, workers: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "REVOKER_HOST": "127.0.0.1", "REVOKER_PORT": str(port),
               "REVOKER_API_KEYS": KEYS, "REVOKER_STORE_URL": redis_server.url,
               "REVOKER_KEY_PREFIX": prefix, "REVOKER_WORKERS": workers}
        done = subprocess.run([sys.executable, "-m", "revoker", "serve"], env=env,
                              capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 2
    assert f"REVOKER_PORT: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_https_connections_are_guarded_too(tmp_path: Path) -> None:
    """Over TLS, a malformed header line gets the guard's fixed 400 (that quotes nothing)
    and a client that never finishes its handshake is dropped after the header timeout."""
    pki = Pki(tmp_path)
    cert, key = pki.issue("server", server=True)
    env = {"REVOKER_TLS_CERT": cert, "REVOKER_TLS_KEY": key, "REVOKER_HEADER_TIMEOUT": "1"}
    context = client_context(pki.ca_path)
    with serving(env, scheme="https", context=context) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: revoker\r\nAuthorization: Bearer "
                        + ADMIN.encode() + b"\x00\r\n\r\n")
            answer = b""
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                while chunk := tls.recv(65536):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:100]
        assert b"application/problem+json" in answer and ADMIN.encode() not in answer

        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(1024) == b""  # closed by the server, not by the timeout
            assert time.monotonic() - started < 3
        assert server.terminate() == 0
        assert ADMIN not in server.log
