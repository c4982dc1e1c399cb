"""A tiny identity provider: serves a JWKS document that tests change (rotation), take
down (outage) or slow down, on a free local port, and counts fetches."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class JwksServer:
    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.down = False
        #: seconds each answer is held back: an identity provider that hangs
        self.delay_s = 0.0
        self.fetches = 0
        app = web.Application()
        app.router.add_get("/jwks.json", self._serve)
        self._server = TestServer(app)

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            return web.Response(status=503, text="down")
        return web.json_response(self.jwks)

    async def start(self) -> JwksServer:
        await self._server.start_server()
        return self

    async def stop(self) -> None:
        await self._server.close()

    @property
    def url(self) -> str:
        return str(self._server.make_url("/jwks.json"))
