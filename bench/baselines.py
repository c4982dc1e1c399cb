"""Baseline servers for the benchmark: what revoker is compared against, same request mix.

``hello``: aiohttp on uvloop answering every path with a fixed JSON body — the ceiling of
the HTTP stack revoker is built on. ``allow``: the same answering 200 with an empty body —
the floor of any forward-auth on aiohttp (bench/gateway.py): nginx ``auth_request`` reads
only the answer's head, so it can keep its upstream connection only when there is no body,
as with revoker's 200s. ``naive``: the same, plus one ``await redis.exists()``
per ``GET /v1/check/{jti}`` — the straightforward implementation revoker must beat.
One process per invocation; the harness starts N of them on one port (SO_REUSEPORT).

    python bench/baselines.py hello PORT
    python bench/baselines.py allow PORT
    python bench/baselines.py naive PORT REDIS_URL PREFIX
"""

from __future__ import annotations

import asyncio
import signal
import sys

import redis.asyncio as aioredis
import uvloop
from aiohttp import web

BODY = b'{"revoked":false}'


def hello_app(body: bytes = BODY) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        if request.can_read_body:
            await request.read()
        if not body:
            return web.Response(status=200)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


def naive_app(redis_url: str, prefix: str) -> web.Application:
    client = aioredis.Redis.from_url(redis_url)

    async def check(request: web.Request) -> web.Response:
        revoked = await client.exists(f"{prefix}jti:{request.match_info['jti']}")
        body = b'{"revoked":true}' if revoked else BODY
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/check/{jti}", check)
    return app


async def serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str]) -> None:
    mode, port = argv[0], int(argv[1])
    if mode == "naive":
        app = naive_app(argv[2], argv[3])
    else:
        app = hello_app(BODY if mode == "hello" else b"")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(app, port))


if __name__ == "__main__":
    main(sys.argv[1:])
