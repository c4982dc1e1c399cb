"""Real redis-server processes for the suite: started on free ports, never the machine's 6379.

Tests need to stop, kill, freeze and restart Redis, so they own the process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, *, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class RedisProcess:
    """One redis-server; ``args`` are extra config directives (``["--appendonly", "yes"]``)."""

    def __init__(self, args: Sequence[str] = (), *, port: int | None = None,
                 directory: str | None = None, password: str | None = None,
                 cli_args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        #: For ``cli`` when the server has ``requirepass``.
        self.password = password
        #: Extra redis-cli options, e.g. ``--tls --cacert ca.pem`` for a TLS-only server.
        self.cli_args = list(cli_args)
        self.args = list(args)
        self.dir = directory or tempfile.mkdtemp(prefix="revoker-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", self.dir, "--save", "", "--appendonly", "no",
               "--maxmemory-policy", "noeviction", "--daemonize", "no",
               "--logfile", str(Path(self.dir) / "redis.log"), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self._wait_loaded()
        return self

    def _wait_loaded(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b"PONG" in self.cli("PING", check=False):
                return
            time.sleep(0.02)
        raise TimeoutError("redis-server did not become ready")

    def cli(self, *args: str, check: bool = True) -> bytes:
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        result = subprocess.run(["redis-cli", "-p", str(self.port), *self.cli_args, *auth,
                                 *args],
                                capture_output=True, timeout=10, check=check)
        return result.stdout

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def freeze(self) -> None:
        self.kill(signal.SIGSTOP)

    def thaw(self) -> None:
        self.kill(signal.SIGCONT)

    def restart(self) -> RedisProcess:
        self.kill()
        return self.start()

    def stop(self) -> None:
        stop_process(self.proc, self.dir)


def stop_process(proc: subprocess.Popen[bytes] | None, directory: str) -> None:
    """Stop a server (thawing it first, in case a test froze it) and remove its files."""
    if proc and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    shutil.rmtree(directory, ignore_errors=True)
