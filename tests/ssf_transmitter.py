"""A Shared Signals transmitter's poll endpoint (RFC 8936) on a fixed free local port,
for the poll-delivery tests: a queue of SETs that are delivered until acknowledged.

What the RFC asks of a transmitter, and this one does:
- ``POST`` with an ``application/json`` body; ``maxEvents`` (0 = acknowledge only),
  ``returnImmediately`` (false: hold the request until a SET is available or the hold
  time passes), ``ack`` (jtis now acknowledged) and ``setErrs`` (jti -> ``{"err",
  "description"}``) are read first; a malformed request is a 400 ``{"err":
  "invalid_request"}`` and a missing or wrong bearer credential a 401.
- the answer is ``{"sets": {jti: SET}, "moreAvailable": bool}``; a SET stays queued, and
  is delivered again, until it is acknowledged or reported in ``setErrs``.

Tests also make it fail (``fail_next``: 503s), restart it on the same port (the queue
survives, as a durable one would, and unacknowledged SETs come again), and read every
request it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from tests.redis_proc import free_port


class SsfTransmitter:
    def __init__(self, *, token: str, hold_s: float = 0.3) -> None:
        self.token = token
        self.hold_s = hold_s
        self.port = free_port()
        #: jti -> SET (or any JSON value, to send a malformed one), in delivery order
        self.pending: dict[str, Any] = {}
        self.acked: list[str] = []
        self.errors: dict[str, dict[str, Any]] = {}
        #: every request body accepted, and the number of SETs each answer carried
        self.requests: list[dict[str, Any]] = []
        self.served: list[int] = []
        self.refused_auth = 0
        self._failures = 0
        self._published = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ssf/poll"

    def publish(self, jti: str, token: Any) -> None:
        self.pending[jti] = token
        self._published.set()

    def fail_next(self, count: int) -> None:
        self._failures = count

    async def start(self) -> SsfTransmitter:
        app = web.Application()
        app.router.add_post("/ssf/poll", self._poll)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _poll(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused_auth += 1
            return web.json_response({"err": "authentication_failed"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if self._failures:
            self._failures -= 1
            return web.json_response({"err": "temporarily_unavailable"}, status=503)
        body = await self._read(request)
        if body is None:
            return web.json_response({"err": "invalid_request"}, status=400)
        self.requests.append(body)
        for jti in body.get("ack", []):
            self.pending.pop(jti, None)
            self.acked.append(jti)
        for jti, error in body.get("setErrs", {}).items():
            self.pending.pop(jti, None)
            self.errors[jti] = error
        max_events = body.get("maxEvents")
        if max_events == 0:
            return web.json_response({"sets": {}})
        if not self.pending and not body.get("returnImmediately", False):
            self._published.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), self.hold_s)
        chosen = dict(list(self.pending.items())[:max_events])
        self.served.append(len(chosen))
        return web.json_response({"sets": chosen,
                                  "moreAvailable": len(self.pending) > len(chosen)})

    @staticmethod
    async def _read(request: web.Request) -> dict[str, Any] | None:
        if request.content_type != "application/json":
            return None
        try:
            body = await request.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        max_events, immediately = body.get("maxEvents"), body.get("returnImmediately", False)
        ack, errors = body.get("ack", []), body.get("setErrs", {})
        valid = (max_events is None or (isinstance(max_events, int) and max_events >= 0)) \
            and isinstance(immediately, bool) \
            and isinstance(ack, list) and all(isinstance(j, str) for j in ack) \
            and isinstance(errors, dict) \
            and all(isinstance(e, dict) and isinstance(e.get("err"), str)
                    for e in errors.values())
        return body if valid else None
