"""The SDK's background event loop: one daemon thread per ``Guard``.

Why a thread of its own: a WSGI application has no event loop to run the mirror's
stream or the JWKS refresher on, and an ASGI application's loop may be blocked by the
application itself, which must not make the copy of the denylist go stale. What runs
here only ever writes to structures that other threads read with single dict lookups.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self, name: str = "revoker-sdk") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], *, timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for it from another thread."""
        if self.in_thread():
            coro.close()
            raise RuntimeError("BackgroundLoop.call from the loop's own thread")
        return self.submit(coro).result(timeout=timeout_s)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the background loop from any other loop (or this one)."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, *, timeout_s: float = 5.0) -> None:
        if not self._started:
            self.loop.close()  # never run: nothing on it to finish
        elif self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
