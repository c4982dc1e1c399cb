"""A service started before (or without) its Redis says which store it waits for, why, and
for how long, then gives up with exit status 1; a password in the URL is never logged."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.redis_proc import free_port

pytestmark = pytest.mark.slow


def test_a_missing_redis_is_named_counted_down_and_given_up_on() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOKER_")}
    env.update(REVOKER_STORE_URL=f"redis://:hunter2-secret@127.0.0.1:{port}/0",
               REVOKER_PORT=str(free_port()))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "revoker", "serve"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert 9 <= time.monotonic() - started < 40
    lines = [line for line in done.stderr.splitlines() if "revoker.web.app" in line
             or "cannot start" in line]
    where = f"redis://***@127.0.0.1:{port}/0"
    assert f"store {where} not reachable: " in lines[0] and "retrying for 10 s" in lines[0]
    assert "Connection refused" in lines[0]
    assert any("s left" in line for line in lines[1:-1])
    assert f"cannot start: the store is unreachable: {where} did not answer" in lines[-1]
    assert len(lines) <= 8  # a countdown, not a line per attempt
    assert "hunter2" not in done.stderr + done.stdout
