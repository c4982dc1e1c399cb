"""``revoker serve`` as a real subprocess, for tests that need the whole program; raw
sockets for tests that must send bytes no HTTP client would."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tests.redis_proc import free_port


class ServeProcess:
    """One ``revoker serve``. With ``log_to_file`` its stdout and stderr go to a file
    (``log``), so that a chatty run can never block on a full pipe."""

    def __init__(self, env: Mapping[str, str], *, args: tuple[str, ...] = (),
                 log_to_file: bool = False) -> None:
        self.port = free_port()
        self.env = {**os.environ, "REVOKER_HOST": "127.0.0.1", "REVOKER_PORT": str(self.port),
                    **env}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = (Path(tempfile.mkstemp(prefix="revoker-serve-", suffix=".log")[1])
                         if log_to_file else None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """Everything the process wrote so far (``log_to_file`` only)."""
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")

    def start(self, *, wait: bool = True) -> ServeProcess:
        output: int | IO[str] = subprocess.PIPE
        if self.log_path is not None:
            output = self.log_path.open("w")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "revoker", "serve", *self.args],
                                         env=self.env, stdout=output, stderr=output, text=True)
        finally:
            if not isinstance(output, int):
                output.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"revoker exited {self.proc.returncode}: {self._errors()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("revoker serve did not answer /healthz")

    def _errors(self) -> str:
        if self.log_path is not None:
            return self.log
        assert self.proc is not None and self.proc.stderr is not None
        return self.proc.stderr.read()

    def wait_exit(self, timeout_s: float = 15.0) -> tuple[int, str, str]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out, err

    def stop(self) -> tuple[str, str]:
        """SIGTERM (SIGKILL after 15 s); returns (stdout, stderr), or ("", log) when the
        output went to a file."""
        if self.proc is None:
            return "", ""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if self.log_path is not None:
            return "", self.log
        return out or "", err or ""

    def remove_log(self) -> None:
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def raw_exchange(port: int, data: bytes, *, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` as-is on a fresh connection; return everything read until the server
    closes (or ``timeout_s`` passes without a byte)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        # The server may answer and close before taking everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response (0 when there is none)."""
    parts = response.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return 0
    return int(parts[1])
