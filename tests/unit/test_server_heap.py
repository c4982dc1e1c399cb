"""A serving process keeps what it started with out of the cycle collector's walks.

Run in this process (the embedded store, one process): the heap must be frozen by the time
the port accepts its first connection, and the process must still answer afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from revoker.config import Settings
from revoker.server import _serve
from tests.redis_proc import free_port


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Start and end with nothing frozen: the freeze is process-wide."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
async def serving(unfrozen: None) -> AsyncIterator[tuple[int, list[int]]]:
    """``_serve`` on a free port, and the freeze count seen when the port first accepted."""
    port = free_port()
    settings = Settings.from_env({"REVOKER_HOST": "127.0.0.1", "REVOKER_PORT": str(port),
                                  "REVOKER_ACCESS_LOG": "false"})
    task = asyncio.create_task(_serve(settings, index=0, multiprocess=False))
    seen: list[int] = []
    deadline = asyncio.get_running_loop().time() + 15
    try:
        while not seen:
            assert not task.done(), "the server stopped while starting"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "never listened"
                await asyncio.sleep(0.01)
                continue
            seen.append(gc.get_freeze_count())
            writer.close()
            await writer.wait_closed()
        yield port, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_heap_is_frozen_before_the_first_connection(
        serving: tuple[int, list[int]]) -> None:
    _, seen = serving
    assert seen[0] > 10_000  # the modules, the app, the store: everything start-up made


async def test_a_frozen_process_still_answers_and_collects_new_garbage(
        serving: tuple[int, list[int]]) -> None:
    port, _ = serving
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
    frozen = gc.get_freeze_count()

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    Cycle()  # garbage made after the freeze is still the collector's to free
    assert gc.collect() >= 1
    assert gc.get_freeze_count() == frozen
