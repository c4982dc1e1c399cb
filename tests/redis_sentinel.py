"""A Sentinel-managed Redis for the suite: primary + replica + 3 sentinels on free ports.

Fault tests kill the primary and watch the sentinels promote the replica, so the
suite owns every process (never the machine's Redis).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_proc import REDIS_SERVER, RedisProcess, free_port, stop_process, wait_port
from tests.tls_certs import TlsFiles

MASTER_NAME = "revoker-primary"
DOWN_AFTER_MS = 1000


def _tls_lines(port: int, tls: TlsFiles) -> list[str]:
    """TLS-only listening (``port 0``), TLS to the monitored servers too."""
    return ["port 0", f"tls-port {port}", f"tls-cert-file {tls.cert}",
            f"tls-key-file {tls.key}", f"tls-ca-cert-file {tls.ca}", "tls-auth-clients no",
            "tls-replication yes"]


def _tls_args(port: int, tls: TlsFiles) -> list[str]:
    out: list[str] = []
    for line in _tls_lines(port, tls):
        name, value = line.split(" ", 1)
        out += [f"--{name}", value]
    return out


class SentinelProcess:
    """One ``redis-server --sentinel`` with its own (rewritable) config file."""

    def __init__(self, primary_port: int, *, quorum: int = 2, auth_pass: str | None = None,
                 password: str | None = None, tls: TlsFiles | None = None) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="revoker-sentinel-")
        self.conf = Path(self.dir) / "sentinel.conf"
        self.conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
            f"logfile {self.dir}/sentinel.log",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} {quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} 2000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            *([f"sentinel auth-pass {MASTER_NAME} {auth_pass}"] if auth_pass else []),
            *([f"requirepass {password}"] if password else []),
            *(_tls_lines(self.port, tls) if tls else []), ""]))
        self.password = password
        self.cli_args = ["--tls", "--cacert", tls.ca] if tls else []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def cli(self, *args: str) -> str:
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        result = subprocess.run(["redis-cli", "-p", str(self.port), *self.cli_args, *auth,
                                 *args],
                                capture_output=True, timeout=10, check=False)
        return result.stdout.decode()

    def master_port(self) -> int | None:
        lines = self.cli("SENTINEL", "get-master-addr-by-name", MASTER_NAME).split()
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None

    def stop(self) -> None:
        stop_process(self.proc, self.dir)


class SentinelGroup:
    """Primary, replica and three sentinels; ``url`` is the store URL for revoker."""

    def __init__(self, *, data_args: list[str] | None = None, primary_auth: str | None = None,
                 sentinel_password: str | None = None, tls: TlsFiles | None = None) -> None:
        """``primary_auth`` is the data nodes' password (replicas and sentinels use it);
        with ``tls`` every process listens on TLS only, replication included."""
        # No 5 s wait for more replicas before a diskless full sync.
        args = ["--repl-diskless-sync-delay", "0", *(data_args or [])]
        if primary_auth:
            args += ["--masterauth", primary_auth]
        cli_args = ["--tls", "--cacert", tls.ca] if tls else []
        self.primary = RedisProcess(args, password=primary_auth, cli_args=cli_args)
        self.replica = RedisProcess([*args, "--replicaof", "127.0.0.1", str(self.primary.port)],
                                    password=primary_auth, cli_args=cli_args)
        if tls:
            for node in (self.primary, self.replica):
                node.args += _tls_args(node.port, tls)
        self.sentinels = [SentinelProcess(self.primary.port, auth_pass=primary_auth,
                                          password=sentinel_password, tls=tls)
                          for _ in range(3)]
        self.primary_auth = primary_auth
        self.scheme = "rediss+sentinel" if tls else "redis+sentinel"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{self.scheme}://{hosts}/{MASTER_NAME}"

    def start(self, *, wait_peers: bool = True) -> SentinelGroup:
        """``wait_peers=False`` skips waiting for the sentinels to find each other (a
        few seconds of hello messages), which only a failover needs."""
        self.primary.start()
        self.replica.start()
        self._wait_replica_synced(self.replica)
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_sentinels_agree(self.primary.port, peers=wait_peers)
        return self

    def _wait_replica_synced(self, replica: RedisProcess, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b"master_link_status:up" in replica.cli("INFO", "replication", check=False):
                return
            time.sleep(0.05)
        raise TimeoutError("replica did not sync with its primary")

    def wait_sentinels_agree(self, port: int, *, timeout_s: float = 15.0,
                             peers: bool = True) -> None:
        """Every sentinel names ``port`` as the master (and knows the other sentinels)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(s.master_port() == port for s in self.sentinels) and (not peers or all(
                    "num-other-sentinels\n2" in s.cli("SENTINEL", "master", MASTER_NAME)
                    for s in self.sentinels)):
                return
            time.sleep(0.1)
        raise TimeoutError(f"sentinels did not agree on master port {port}")

    def current_master_port(self) -> int | None:
        return self.sentinels[0].master_port()

    def process_on(self, port: int) -> RedisProcess:
        return self.primary if self.primary.port == port else self.replica

    def wait_failover(self, old_port: int, *, timeout_s: float = 30.0) -> int:
        """Wait until the sentinels name a master other than ``old_port``; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.current_master_port()
            if port is not None and port != old_port:
                return port
            time.sleep(0.05)
        raise TimeoutError("sentinels did not fail over")

    def stop(self) -> None:
        for proc in [*self.sentinels, self.replica, self.primary]:
            with contextlib.suppress(Exception):
                proc.stop()
