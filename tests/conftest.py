"""Fixtures shared by the whole suite: a real redis-server, unique key prefixes, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.redis_proc import RedisProcess


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One standalone Redis for the session; tests isolate themselves by key prefix."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test, so no test sees another's keys or events."""
    return f"t{uuid.uuid4().hex[:12]}:"


class FakeClock:
    """A clock tests move by hand: no sleeping for TTLs."""

    def __init__(self, now: float = 1_764_340_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
