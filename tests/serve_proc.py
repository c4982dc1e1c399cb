"""``revoker serve`` as a real subprocess, for tests that need the whole program."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping

from tests.redis_proc import free_port


class ServeProcess:
    def __init__(self, env: Mapping[str, str], *, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.env = {**os.environ, "REVOKER_HOST": "127.0.0.1", "REVOKER_PORT": str(self.port),
                    **env}
        self.args = args
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> ServeProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "revoker", "serve", *self.args],
                                     env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"revoker exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("revoker serve did not answer /healthz")

    def wait_exit(self, timeout_s: float = 15.0) -> tuple[int, str, str]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out, err

    def stop(self) -> tuple[str, str]:
        if self.proc is None:
            return "", ""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return out, err
